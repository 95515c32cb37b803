#!/usr/bin/env bash
# Line and branch coverage of the library over the whole test suite (unit
# tests and every integration test of the root package), as a table, then
# a gate per directory: the wire format (src/codec/) and the protocol
# (src/session/) are where a missed line is a missed protocol rule.
#
# Usage: .ci/coverage.sh   (from .ci/run, after .ci/mosquitto.sh, so the
# mosquitto interop tests count too). Installs what it needs.
#
# How branch coverage is had here:
# - Branch coverage is rustc's unstable `-Z coverage-options=branch`
#   (cargo llvm-cov --branch), so it needs a nightly compiler, and
#   llvm-cov/llvm-profdata of the same LLVM major as that compiler: the
#   profile formats change between LLVM majors.
# - rustup's llvm-tools-preview component is not used: only Debian's llvm-N
#   packages are assumed to be reachable. Debian 12 has up to llvm-22.
# - The nightly here (1.101, 2026-10-29) is built on LLVM 23 and writes raw
#   profiles of format 11; Debian's newest, llvm-22's llvm-profdata, reads
#   format 10 and refuses them ("raw profile version mismatch"). The stable
#   compiler (1.95) is built on LLVM 22. So the stable compiler is used,
#   with RUSTC_BOOTSTRAP=1 to let it accept the unstable flag, and Debian's
#   llvm-22 reads its profiles. The LLVM major is read from `rustc -vV`, so
#   a newer stable picks its own llvm-N.
# - Doctests are left out (cargo llvm-cov counts them only with its
#   unstable --doctests): they are examples, not the protocol's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# The gates: directory, metric, minimum percent, enforced (1) or reported (0).
# All four are enforced, as coreMQTT gates its CI on branch coverage.
GATES=(
    "src/codec/ lines 95 1"
    "src/codec/ branches 90 1"
    "src/session/ lines 95 1"
    "src/session/ branches 90 1"
)

llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
llvm_bin=/usr/lib/llvm-$llvm_major/bin
if [[ ! -x $llvm_bin/llvm-cov || ! -x $llvm_bin/llvm-profdata ]]; then
    echo "installing llvm-$llvm_major for llvm-cov and llvm-profdata"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "llvm-$llvm_major" >/dev/null
fi
export LLVM_COV=$llvm_bin/llvm-cov
export LLVM_PROFDATA=$llvm_bin/llvm-profdata
if ! command -v cargo-llvm-cov >/dev/null; then
    cargo install cargo-llvm-cov --locked --quiet
fi

export RUSTC_BOOTSTRAP=1
# The test output goes to a log: only the table matters here, and a failing
# test fails this script (set -e) with the log's tail.
log=$(mktemp)
json=$(mktemp)
trap 'rm -f "$log" "$json"' EXIT
if ! cargo llvm-cov --branch -p minimqtt --no-report >"$log" 2>&1; then
    tail -n 60 "$log"
    exit 1
fi
cargo llvm-cov report --branch -p minimqtt --summary-only
cargo llvm-cov report --branch -p minimqtt --json --summary-only --output-path "$json"

python3 - "$json" "${GATES[@]}" <<'EOF'
import json
import sys

report = json.load(open(sys.argv[1]))
files = report["data"][0]["files"]
failed = False
print()
print(f"{'directory':<14}{'metric':<10}{'covered':>16}{'percent':>9}{'gate':>7}  result")
for gate in sys.argv[2:]:
    directory, metric, minimum, enforced = gate.split()
    count = covered = 0
    for f in files:
        if f"/{directory}" in f["filename"]:
            count += f["summary"][metric]["count"]
            covered += f["summary"][metric]["covered"]
    if count == 0:
        print(f"{directory}: no {metric} measured", file=sys.stderr)
        sys.exit(1)
    percent = 100.0 * covered / count
    ok = percent >= float(minimum)
    if ok:
        result = "ok"
    elif enforced == "1":
        result = f"FAIL ({float(minimum) - percent:.2f} points short)"
        failed = True
    else:
        result = f"below, not enforced ({float(minimum) - percent:.2f} points short)"
    print(f"{directory:<14}{metric:<10}{f'{covered}/{count}':>16}{percent:>8.2f}%{minimum:>6}%  {result}")
sys.exit(1 if failed else 0)
EOF
