#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a fixed time each.
#
#   fuzz/run.sh [seconds] [target ...]     default: 60 s, all targets
#
# Needs the nightly toolchain and cargo-fuzz 0.13 (`cargo install cargo-fuzz`).
# Each target starts from fuzz/seeds/<target>/, copied into the scratch
# corpus fuzz/corpus/<target>/ (git-ignored) so the committed seeds stay as
# they are; new inputs found on earlier runs are kept there and reused.
# Prints each target's execution count and exits 1 if any target crashed,
# with the crash's reproducer bytes (and file under fuzz/artifacts/<target>/).
set -uo pipefail

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz_dir/.."

secs=${1:-60}
shift || true
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    targets=(decode round_trip topic_match session session_v5 decode_v5 round_trip_v5)
fi

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }

echo "building fuzz targets ..." >&2
build_log=$(mktemp)
if ! cargo +nightly fuzz build >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    exit 2
fi
rm -f "$build_log"

logs="$fuzz_dir/target/run-logs"
mkdir -p "$logs"
failed=0
summary=()
for t in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$t"
    mkdir -p "$corpus" "$fuzz_dir/artifacts/$t"
    cp -n "$fuzz_dir/seeds/$t/"* "$corpus/" 2>/dev/null || true
    log="$logs/$t.log"
    echo "fuzzing $t for ${secs}s ..." >&2
    cargo +nightly fuzz run "$t" "$corpus" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [[ -n "$execs" ]] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    size=$(ls "$corpus" | wc -l)
    if [[ $rc -eq 0 ]]; then
        status=ok
    else
        status="FAILED (exit $rc)"
        failed=1
        echo "=== $t failed (full log: $log):" >&2
        # The panic message (or sanitizer summary), then cargo-fuzz's account of the input.
        sed -n '/panicked at/,/^stack backtrace:/p' "$log" | grep -v '^stack backtrace:' | head -n 30 >&2
        grep -E '(ERROR|SUMMARY): ' "$log" | head -n 5 >&2
        sed -n '/^Failing input:/,/^Reproduce with:/p' "$log" | grep -v '^Reproduce with:' | head -n 60 >&2
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        if [[ -n "$artifact" && -f "$artifact" ]]; then
            echo "=== reproducer $artifact ($(wc -c <"$artifact") bytes):" >&2
            od -An -tx1 -v "$artifact" | head -n 20 >&2
            echo "=== rerun: cargo +nightly fuzz run $t $artifact" >&2
        fi
    fi
    summary+=("$(printf '%-12s %14s %10s %8s  %s' "$t" "${execs:-?}" "${rate:-?}" "$size" "$status")")
done

echo
printf '%-12s %14s %10s %8s  %s\n' target executions "exec/s" corpus status
printf '%s\n' "${summary[@]}"
exit $failed
