#!/usr/bin/env bash
# Runs the firmware in QEMU against a mosquitto on the host, and checks what
# both of them logged.
#
#   examples/qemu/run.sh          (from anywhere)
#
# 1. builds the firmware (release, thumbv7em-none-eabihf);
# 2. starts a private mosquitto on 127.0.0.1 at a free port, logging
#    everything (`log_type all`) to a temporary directory;
# 3. runs QEMU's mps2-an386 (Cortex-M4) with UART0 connected to that port
#    (`-serial tcp:127.0.0.1:PORT`, QEMU as the TCP client) and semihosting
#    on, for at most QEMU_TIMEOUT seconds (default 60);
# 4. checks that the firmware exited with status 0 and printed PASS, and
#    that mosquitto's log shows the whole exchange: CONNECT, SUBSCRIBE at
#    QoS 2, a QoS 1 and a QoS 2 PUBLISH from the firmware, both delivered
#    back to it with their handshakes, an 8 KiB PUBLISH out and back
#    (through 512-byte buffers), and a DISCONNECT; and no line where
#    mosquitto reports a protocol error;
# 5. prints the flash and static RAM of the ELF and the stack high-water
#    mark the firmware measured.
#
# Without qemu-system-arm or mosquitto it skips (exit 0), unless CI is set:
# then a missing tool is a failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TERM_COLOR=never
client_id=minimqtt-qemu
topic=minimqtt/qemu/echo

missing() {
    if [[ -n "${CI:-}" ]]; then
        echo "run.sh: $1 is not installed (CI is set: failing)" >&2
        exit 1
    fi
    echo "run.sh: $1 is not installed: skipping the QEMU run" >&2
    exit 0
}
command -v qemu-system-arm >/dev/null || missing qemu-system-arm
mosquitto=$(command -v mosquitto || true)
[[ -z "$mosquitto" && -x /usr/sbin/mosquitto ]] && mosquitto=/usr/sbin/mosquitto
[[ -n "$mosquitto" ]] || missing mosquitto
if command -v readelf >/dev/null; then
    readelf=readelf
elif command -v llvm-readelf >/dev/null; then
    readelf=llvm-readelf
else
    missing readelf
fi

echo "building the firmware (examples/qemu)" >&2
(cd "$here" && cargo build --quiet --release)
elf="$here/target/thumbv7em-none-eabihf/release/minimqtt-qemu"

dir=$(mktemp -d)
broker_pid=
cleanup() {
    [[ -n "$broker_pid" ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
log="$dir/mosquitto.log"

# A random port that mosquitto manages to bind; a few tries, since another
# program may hold the first one picked.
start_broker() {
    local port=$1
    rm -f "$log"
    cat >"$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_type all
log_dest file $log
# Started as root, mosquitto would switch to its own user, which cannot
# write the log here.
user root
CONF
    "$mosquitto" -c "$dir/mosquitto.conf" 2>"$dir/mosquitto.stderr" &
    broker_pid=$!
    for _ in $(seq 100); do
        grep -q ' running$' "$log" 2>/dev/null && return 0
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=
    return 1
}
port=
for _ in 1 2 3 4 5; do
    candidate=$((20000 + RANDOM % 40000))
    if start_broker "$candidate"; then
        port=$candidate
        break
    fi
done
if [[ -z "$port" ]]; then
    echo "run.sh: mosquitto did not start" >&2
    cat "$dir/mosquitto.stderr" "$log" >&2 2>/dev/null || true
    exit 1
fi
echo "mosquitto listening on 127.0.0.1:$port" >&2

echo "running QEMU mps2-an386 (timeout ${QEMU_TIMEOUT:-60} s)" >&2
output="$dir/firmware.txt"
started=$(date +%s%N)
status=0
timeout "${QEMU_TIMEOUT:-60}" qemu-system-arm \
    -machine mps2-an386 \
    -display none -monitor none \
    -semihosting-config enable=on,target=native \
    -serial "tcp:127.0.0.1:$port" \
    -kernel "$elf" >"$output" 2>"$dir/qemu.stderr" || status=$?
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
sed 's/^/  firmware: /' "$output"
if [[ -s "$dir/qemu.stderr" ]]; then
    sed 's/^/  qemu: /' "$dir/qemu.stderr"
fi

failures=0
fail() {
    echo "FAILED: $*" >&2
    failures=$((failures + 1))
}
expect_log() { # description, fixed string
    grep -qF -- "$2" "$log" || fail "mosquitto's log has no $1 (\"$2\")"
}
expect_re() { # description, extended regular expression
    grep -qE -- "$2" "$log" || fail "mosquitto's log has no $1 (/$2/)"
}

case $status in
    0) ;;
    124) fail "QEMU did not exit within ${QEMU_TIMEOUT:-60} s" ;;
    *) fail "the firmware exited with status $status" ;;
esac
grep -qx 'PASS in [0-9]* ms' "$output" || fail "the firmware did not print PASS"

expect_log "CONNECT (clean session, keep-alive 30)" "New client connected from 127.0.0.1:"
expect_log "CONNECT (clean session, keep-alive 30)" " as $client_id (p2, c1, k30)."
expect_log "SUBSCRIBE at QoS 2" "$client_id 2 $topic"
expect_log "QoS 1 PUBLISH from the firmware" "Received PUBLISH from $client_id (d0, q1, r0,"
expect_log "QoS 2 PUBLISH from the firmware" "Received PUBLISH from $client_id (d0, q2, r0,"
expect_log "PUBREL (its QoS 2 publish)" "Received PUBREL from $client_id"
expect_log "QoS 1 delivery to the firmware" "Sending PUBLISH to $client_id (d0, q1, r0,"
expect_log "QoS 2 delivery to the firmware" "Sending PUBLISH to $client_id (d0, q2, r0,"
expect_log "PUBACK (QoS 1 delivery)" "Received PUBACK from $client_id"
expect_log "PUBREC (QoS 2 delivery)" "Received PUBREC from $client_id"
expect_log "PUBCOMP (QoS 2 delivery)" "Received PUBCOMP from $client_id"
large="'minimqtt/qemu/large', \.\.\. \(8192 bytes\)\)"
expect_re "the 8 KiB PUBLISH from the firmware" "Received PUBLISH from $client_id \(d0, q1, r0, m[0-9]+, $large"
expect_re "its delivery back to the firmware" "Sending PUBLISH to $client_id \(d0, q1, r0, m[0-9]+, $large"
expect_log "DISCONNECT" "Received DISCONNECT from $client_id"
expect_log "a clean disconnect" "Client $client_id disconnected."
# The lines mosquitto 2.0 writes when a client breaks MQTT 3.1.1 (as in
# tests/common/mosquitto.rs).
if grep -E ': (Bad client |Invalid |Protocol error|Empty (un)?subscription string|Too high QoS)| disconnected due to ' "$log" >&2; then
    fail "mosquitto reported a protocol error"
fi

if ((failures > 0)); then
    echo "--- mosquitto log" >&2
    cat "$log" >&2
    exit 1
fi

# Flash = .vector_table + .text + .rodata + .data (what is loaded at 0);
# static RAM = .data + .bss + .uninit (the stack is the rest of the 64 KiB).
read -r flash ram < <("$readelf" -S -W "$elf" | sed -n 's/^ *\[ *[0-9]*\] *//p' | awk '
    function hex(s,  i, n) {
        n = 0; s = tolower(s)
        for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
        return n
    }
    $1 ~ /^\.(vector_table|text|rodata|data)$/ { flash += hex($5) }
    $1 ~ /^\.(data|bss|uninit)$/ { ram += hex($5) }
    END { print flash + 0, ram + 0 }')
stack=$(sed -n 's/^stack high-water mark: \([0-9]*\) of.*/\1/p' "$output")
echo
echo "QEMU mps2-an386 run: PASS in $elapsed_ms ms (QEMU start to exit)"
printf 'flash %d bytes (%s KiB), static RAM %d bytes, stack high-water mark %s bytes\n' \
    "$flash" "$(awk -v b="$flash" 'BEGIN { printf "%.1f", b / 1024 }')" "$ram" "$stack"
