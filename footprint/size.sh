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
#     .data, static RAM = .data + .bss (the stack is not counted);
#   - size_of the client's types on each target (stored by client.rs in a
#     section that is not loaded).
#
# Usage: footprint/size.sh            (from anywhere)
#        FOOTPRINT_ESP32=0 footprint/size.sh   to skip the firmware
# Exits non-zero if a build fails. Needs `readelf` (binutils) or llvm-readelf.
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

row() { # program target elf
    read -r text rodata data bss flash ram < <(sections "$3")
    printf '| %s | %s | %d | %d | %d | %d | **%d** (%s) | **%d** |\n' \
        "$1" "$2" "$text" "$rodata" "$data" "$bss" "$flash" "$(kb "$flash")" "$ram"
}

echo
echo "Footprint, $(date +%F), $(rustc --version)"
echo
echo "| program | target | .text | .rodata | .data | .bss | flash | static RAM |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
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
    row "ESP32-C3 firmware (examples/esp32)" "riscv32imc-unknown-none-elf" "$esp32_elf"
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
    "Buffers<2048, 2048, 2048, 512> (the walkthrough's)"
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
