#!/usr/bin/env bash
# Flash and static RAM of minimqtt on microcontrollers.
#
# Builds the two footprint programs (src/bin/minimal.rs: codec + one topic
# callback; src/bin/client.rs: the full async Client) in release
# (opt-level "s", fat LTO, one codegen unit, panic = "abort") for
# thumbv7em-none-eabihf and riscv32imc-unknown-none-elf, builds the ESP32-C3
# firmware in examples/esp32 (release, with CI=1 placeholders for settings
# that are not set), and prints:
#
#   - per ELF: .text (code), .rodata, .data, .bss, flash = .text + .rodata +
#     .data, static RAM = .data + .bss, and the stack the program used, run
#     in QEMU (below);
#   - size_of the client's types on each target (stored by client.rs in a
#     section that is not loaded).
#
# Stack: each footprint program is run, unchanged, in QEMU:
# qemu-system-arm -M mps2-an386 (Cortex-M4) for thumbv7em (flash at 0, RAM
# at 0x2000_0000, as in link/thumb.x), qemu-system-riscv32 -M virt for
# riscv32imc (its pflash at 0x2000_0000 and RAM at 0x8000_0000 hold
# link/riscv.x's map; `-bios none` and QEMU's generic loader, which loads
# the ELF and starts the hart at its entry). The reset code (src/rt.rs)
# paints the RAM from _ebss up to _stack_top with 0xAAAAAAAA before it
# calls footprint_main, which ends by calling footprint_done(status): a
# spin loop, with the status (1: the path did what `cargo test` checks) in
# r0 / a0. Through the QEMU monitor the script stops the CPU, requires the
# PC at footprint_done and the status 1, dumps _ebss.._stack_top, and
# reports _stack_top minus the lowest word that is not the paint. The
# painting is in every build, so the flash reported is that of the ELF
# measured. It costs 14 bytes of .text on thumbv7em and 18 on riscv32imc
# (the paint loop); checking the path's result and passing the status
# costs about 30 more (in all: +44 to +52 bytes of flash on thumbv7em, +44
# to +60 on riscv32imc, against the same programs spinning at the end
# without a status). The ESP32-C3 firmware is not run.
#
# Usage: footprint/size.sh            (from anywhere)
#        FOOTPRINT_ESP32=0 footprint/size.sh   to skip the firmware
#        FOOTPRINT_STACK=0 footprint/size.sh   to skip running QEMU
# Without qemu-system-arm or qemu-system-riscv32, that target's stack is
# reported as "-" with a notice, unless FOOTPRINT_STACK=1 or CI is set (and
# FOOTPRINT_STACK is not 0): then a missing QEMU is a failure. Exits
# non-zero if a build fails, or a run does not reach footprint_done with
# status 1. Needs `readelf` (binutils) or llvm-readelf, and `od` and `timeout`
# (coreutils) for the stack.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
export CARGO_TERM_COLOR=never

targets=(thumbv7em-none-eabihf riscv32imc-unknown-none-elf)
programs=(minimal client)

if command -v readelf >/dev/null; then
    READELF=(readelf)
elif command -v llvm-readelf >/dev/null; then
    READELF=(llvm-readelf)
else
    echo "size.sh: needs readelf (binutils) or llvm-readelf" >&2
    exit 1
fi

# Whether the stack is measured: 1 (QEMU required), 0 (skipped), or
# "auto" (where QEMU is installed).
stack_mode=auto
if [[ "${FOOTPRINT_STACK:-}" == 0 ]]; then
    stack_mode=0
elif [[ "${FOOTPRINT_STACK:-}" == 1 || -n "${CI:-}" ]]; then
    stack_mode=1
fi

# The QEMU command line that runs an ELF of a target, minus the ELF.
qemu_for() { # target
    case "$1" in
    thumbv7em-*) echo qemu-system-arm -M mps2-an386 -kernel ;;
    riscv32*) echo qemu-system-riscv32 -M virt -bios none -device ;;
    *) return 1 ;;
    esac
}

# Fail before building when a required QEMU is missing.
if [[ $stack_mode == 1 ]]; then
    for target in "${targets[@]}"; do
        read -r -a qemu < <(qemu_for "$target")
        if ! command -v "${qemu[0]}" >/dev/null; then
            echo "size.sh: ${qemu[0]} is not installed (FOOTPRINT_STACK=1 or CI: failing)" >&2
            exit 1
        fi
    done
fi

for target in "${targets[@]}"; do
    rustup target list --installed 2>/dev/null | grep -qx "$target" ||
        rustup target add "$target" >/dev/null
    echo "building footprint programs for $target" >&2
    (cd "$here" && cargo build --quiet --release --target "$target" --bins)
    # The same client with large-message streaming (minimqtt's `streaming`
    # feature, on by default outside this crate).
    (cd "$here" && cargo build --quiet --release --target "$target" --bin client \
        --features streaming --target-dir "$here/target/streaming")
    # The same three steps over MQTT 5 in a build with only MQTT 5, and
    # over MQTT 3.1.1 in a build with both versions.
    (cd "$here" && cargo build --quiet --release --target "$target" --bin client \
        --no-default-features --features v5 --target-dir "$here/target/v5")
    (cd "$here" && cargo build --quiet --release --target "$target" --bin client \
        --features v5 --target-dir "$here/target/both")
done

esp32_elf="$root/examples/esp32/target/riscv32imc-unknown-none-elf/release/minimqtt-esp32"
if [[ "${FOOTPRINT_ESP32:-1}" != 0 ]]; then
    echo "building the ESP32-C3 firmware (examples/esp32)" >&2
    if ! out="$(cd "$root/examples/esp32" && CI=1 cargo build --quiet --release 2>&1)"; then
        echo "$out" >&2
        exit 1
    fi
    # Without the "placeholder is used" notes of build.rs under CI=1.
    grep -v 'placeholder' <<<"$out" >&2 || true
fi

# awk (POSIX, mawk included) has no hex parsing of its own.
HEX='function hex(s,  i, n) {
    n = 0; s = tolower(s)
    for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
    return n
}'

# Prints ".text .rodata .data .bss flash ram" (bytes) of an ELF.
sections() {
    "${READELF[@]}" -S -W "$1" | sed -n 's/^ *\[ *[0-9]*\] *//p' | awk "$HEX"'
        # name type addr off size es [flags] lk inf al
        $2 == "NULL" { next }
        {
            flags = (NF >= 10) ? $7 : ""
            size = hex($5)
            if (flags !~ /A/) next
            if ($2 == "NOBITS") {
                # .stack and the *_dummy placeholders are not writable.
                if (flags ~ /W/) bss += size
            } else if (flags ~ /X/) {
                text += size
            } else if (flags ~ /W/ || $1 ~ /^\.data/) {
                data += size
            } else {
                rodata += size
            }
        }
        END {
            printf "%d %d %d %d %d %d\n", text, rodata, data, bss,
                text + rodata + data, data + bss
        }'
}

# Prints the four little-endian u32 of the .footprint.sizes section.
type_sizes() {
    "${READELF[@]}" -x .footprint.sizes "$1" | awk "$HEX"'
        /^ *0x/ {
            for (i = 2; i <= 5 && i <= NF; i++) {
                w = $i
                if (length(w) != 8 || w ~ /[^0-9a-f]/) continue
                le = substr(w, 7, 2) substr(w, 5, 2) substr(w, 3, 2) substr(w, 1, 2)
                printf "%d ", hex(le)
            }
        }
        END { print "" }'
}

kb() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }

# The value (hex, no 0x) of a symbol of an ELF.
symbol() { # elf name
    "${READELF[@]}" -s -W "$1" | awk -v name="$2" '$8 == name { print $2; exit }'
}

stack_dir=$(mktemp -d)
trap 'rm -rf "$stack_dir"' EXIT

# Prints the bytes of stack a footprint program used (see the top), or "-"
# when QEMU for its target is missing and not required. Exits the script if
# the run fails.
stack_of() { # target elf
    local target=$1 elf=$2 qemu pc_re status_re
    [[ $stack_mode == 0 ]] && { echo -; return; }
    read -r -a qemu < <(qemu_for "$target") || { echo -; return; }
    if ! command -v "${qemu[0]}" >/dev/null; then
        if [[ $stack_mode == 1 ]]; then
            echo "size.sh: ${qemu[0]} is not installed (FOOTPRINT_STACK=1 or CI: failing)" >&2
            exit 1
        fi
        echo -
        return
    fi
    case "$target" in
    thumbv7em-*)
        qemu+=("$elf")
        pc_re='R15=[0-9a-f]*'
        status_re='R00=[0-9a-f]*'
        ;;
    *)
        qemu+=("loader,file=$elf,cpu-num=0")
        pc_re='^ pc +[0-9a-f]*'
        status_re='x10/a0 +[0-9a-f]*'
        ;;
    esac
    local name ebss top done_at
    for name in _ebss _stack_top footprint_done; do
        if [[ -z "$(symbol "$elf" "$name")" ]]; then
            echo "size.sh: $elf has no symbol $name (src/rt.rs, link/*.x)" >&2
            exit 1
        fi
    done
    ebss=$((0x$(symbol "$elf" _ebss)))
    top=$((0x$(symbol "$elf" _stack_top)))
    # Without the Thumb bit.
    done_at=$((0x$(symbol "$elf" footprint_done) & ~1))
    local dump="$stack_dir/ram.bin" out pc status wait
    # The programs finish in milliseconds; a slow machine gets more time.
    for wait in 0.5 2 10; do
        rm -f "$dump"
        out=$({
            sleep "$wait"
            printf 'stop\ninfo registers\npmemsave %d %d "%s"\nquit\n' \
                "$ebss" $((top - ebss)) "$dump"
        } | timeout 60 "${qemu[@]}" -display none -serial null -monitor stdio 2>&1 |
            tr -d '\r') || true
        pc=$(grep -aoE "$pc_re" <<<"$out" | head -n 1 | grep -oE '[0-9a-f]+$' || true)
        [[ -n "$pc" && $((0x$pc)) == "$done_at" && -s "$dump" ]] && break
    done
    if [[ -z "$pc" || $((0x$pc)) != "$done_at" || ! -s "$dump" ]]; then
        # The monitor's replies, without its echo of the commands.
        grep -av '^(qemu)' <<<"$out" >&2 || true
        printf 'size.sh: %s did not reach footprint_done (0x%x) in QEMU: pc %s\n' \
            "$elf" "$done_at" "${pc:-unknown}" >&2
        exit 1
    fi
    status=$(grep -aoE "$status_re" <<<"$out" | head -n 1 | grep -oE '[0-9a-f]+$' || true)
    if [[ "$status" != 00000001 ]]; then
        echo "size.sh: $elf ended with status ${status:-unknown}, not 00000001: its path failed" >&2
        exit 1
    fi
    # The first word from _ebss up that is not the paint.
    local lowest
    lowest=$(od -An -v -tx4 -w4 --endian=little "$dump" |
        awk '$1 != "aaaaaaaa" { print (NR - 1) * 4; exit }')
    if [[ -z "$lowest" ]]; then
        echo "size.sh: $elf: no word of the stack changed (was it painted?)" >&2
        exit 1
    elif [[ "$lowest" == 0 ]]; then
        echo "size.sh: $elf: the word at _ebss changed: the stack may have overflowed" >&2
        exit 1
    fi
    echo $((top - ebss - lowest))
}

row() { # program target elf
    local text rodata data bss flash ram stack
    read -r text rodata data bss flash ram < <(sections "$3")
    stack=-
    if [[ "${4:-}" != nostack ]]; then
        stack=$(stack_of "$2" "$3") || exit 1
    fi
    printf '| %s | %s | %d | %d | %d | %d | **%d** (%s) | **%d** | **%s** |\n' \
        "$1" "$2" "$text" "$rodata" "$data" "$bss" "$flash" "$(kb "$flash")" "$ram" "$stack"
}

echo
echo "Footprint, $(date +%F), $(rustc --version)"
echo
echo "| program | target | .text | .rodata | .data | .bss | flash | static RAM | stack |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for program in "${programs[@]}"; do
    for target in "${targets[@]}"; do
        label="$program"
        [[ $program == minimal ]] && label="minimal (codec + 1 topic callback)"
        [[ $program == client ]] && label="client (full async Client)"
        row "$label" "$target" "$here/target/$target/release/$program"
    done
    if [[ $program == client ]]; then
        for target in "${targets[@]}"; do
            row "client, \`streaming\` feature" "$target" \
                "$here/target/streaming/$target/release/client"
        done
        for target in "${targets[@]}"; do
            row "client, MQTT 5 only (\`v5\`)" "$target" "$here/target/v5/$target/release/client"
        done
        for target in "${targets[@]}"; do
            row "client, both versions (\`v3\`, \`v5\`)" "$target" \
                "$here/target/both/$target/release/client"
        done
    fi
done
if [[ -f "$esp32_elf" ]]; then
    row "ESP32-C3 firmware (examples/esp32)" "riscv32imc-unknown-none-elf" "$esp32_elf" nostack
fi
if [[ $stack_mode == 0 ]]; then
    echo
    echo "stack \"-\": not measured (FOOTPRINT_STACK=0)"
else
    for target in "${targets[@]}"; do
        read -r -a qemu < <(qemu_for "$target")
        if ! command -v "${qemu[0]}" >/dev/null; then
            echo
            echo "stack \"-\" on $target: ${qemu[0]} is not installed (FOOTPRINT_STACK=1 makes that a failure)"
        fi
    done
fi

echo
echo "size_of on the target (bytes):"
echo
header="| type |"
rule="| --- |"
for target in "${targets[@]}"; do
    header+=" $target |"
    rule+=" ---: |"
done
echo "$header"
echo "$rule"
declare -A sizes
for target in "${targets[@]}"; do
    sizes[$target]="$(type_sizes "$here/target/$target/release/client")"
done
names=(
    "Client<'_, T, C, ()> (INFLIGHT = SUBS = ROUTES = 8; zero-sized T, C)"
    "Session<'_, 8, 8>"
    "Callbacks<'_, (), 8>"
    "Buffers<2048, 4096, 512> (the walkthrough's)"
)
for i in "${!names[@]}"; do
    line="| ${names[$i]} |"
    for target in "${targets[@]}"; do
        read -r -a values <<<"${sizes[$target]}"
        line+=" ${values[$i]:-?} |"
    done
    echo "$line"
done

if [[ -f "$esp32_elf" ]] && command -v llvm-nm >/dev/null; then
    lib=$(llvm-nm --print-size -C --radix=d "$esp32_elf" |
        awk '$3 ~ /^[tTrR]$/ && /(^| |<)minimqtt::/ { s += $2 } END { print s + 0 }')
    echo
    echo "ESP32-C3 firmware: functions and constants named minimqtt::* take $lib bytes"
    echo "(a lower bound: LTO inlines more of the client into the application's code)."
fi
