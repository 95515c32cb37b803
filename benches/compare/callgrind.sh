#!/usr/bin/env bash
# Instructions per message in user space, counted by callgrind: unlike CPU
# time, deterministic enough to compare the two clients' own code (the
# kernel's share, the syscalls, is not counted; see the CPU table for it).
#
#   benches/compare/callgrind.sh [N]     N messages (default 2000)
#
# Each client and workload runs twice under callgrind, with N and with 2N
# messages (one round, no warm-up); the difference over N is the cost of
# one message, with start-up, connecting and the runtime cancelled out.
# The flood's count includes the raw publisher thread (a memcpy-sized
# share). Timing under valgrind differs (one thread at a time), so how
# many acknowledgements a read brings back, and so the per-read costs,
# differ from a native run.
#
# Environment: WORKLOADS (default "qos0 qos1-100 qos1-1 flood"),
# CLIENTS (default "minimqtt rumqttc"), PROFILE=1 also prints the top
# functions (self cost) of minimqtt's 2N run of each workload.
#
# Needs valgrind (apt-get install -y valgrind) and mosquitto.
set -euo pipefail
cd "$(dirname "$0")"

N=${1:-2000}
WORKLOADS=${WORKLOADS:-"qos0 qos1-100 qos1-1 flood"}
CLIENTS=${CLIENTS:-"minimqtt rumqttc"}
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 2; }
cargo build --release --quiet
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

instructions() { # client workload n
    COMPARE_N=$3 COMPARE_ROUNDS=1 COMPARE_WARMUP=0 COMPARE_CLIENTS=$1 COMPARE_WORKLOADS=$2 \
        valgrind --tool=callgrind --callgrind-out-file="$OUT/$1-$2-$3.out" \
        target/release/compare >/dev/null 2>"$OUT/$1-$2-$3.err"
    grep -o 'Collected : [0-9]*' "$OUT/$1-$2-$3.err" | grep -o '[0-9]*$'
}

printf '%-10s' workload
for c in $CLIENTS; do printf ' %14s' "$c"; done
printf '   (instructions per message, user space)\n'
for w in $WORKLOADS; do
    printf '%-10s' "$w"
    for c in $CLIENTS; do
        one=$(instructions "$c" "$w" "$N")
        two=$(instructions "$c" "$w" $((2 * N)))
        printf ' %14d' $(((two - one) / N))
    done
    printf '\n'
done
if [ -n "${PROFILE:-}" ]; then
    for w in $WORKLOADS; do
        [ -f "$OUT/minimqtt-$w-$((2 * N)).out" ] || continue
        echo "--- minimqtt $w, $((2 * N)) messages: self cost by function"
        callgrind_annotate --inclusive=no "$OUT/minimqtt-$w-$((2 * N)).out" 2>/dev/null \
            | sed -n '/^Ir/,$p' | sed -n '3,22p' | cut -c1-160
    done
fi
