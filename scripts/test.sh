#!/usr/bin/env bash
# Runs pullguard's whole test suite: unit tests, store crash tests, python-tuf
# interoperability tests (real HTTP on 127.0.0.1), end-to-end tests against a real registry,
# and doc tests; then `cargo fmt --check` and clippy with `-D warnings`. Installs what it
# needs first. Prints the test runner's summary and exits non-zero if any test or lint fails.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
# shellcheck source=scripts/setup.sh
. scripts/setup.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast --locked 2>&1 | tee "$log" || status=$?

passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
ignored=$(grep -E '^test result: ' "$log" | grep -Eo '[0-9]+ ignored' | awk '{s+=$1} END {print s+0}')
lint=0
cargo fmt --all -- --check || { echo "cargo fmt: the tree is not formatted (run cargo fmt --all)"; lint=1; }
cargo clippy --workspace --all-targets --locked -- -D warnings || { echo "clippy: warnings"; lint=1; }
# Every fuzz target briefly from its seeds (tests/fuzz/README.md).
fuzz=0
scripts/fuzz.sh smoke 60 || { echo "fuzz smoke: failed"; fuzz=1; }

echo
echo "pullguard test summary (all test binaries):"
echo "$passed passed, $failed failed, $ignored skipped"
if [[ $status -ne 0 || $failed -ne 0 ]]; then
  echo "FAILED (cargo exit status $status)"
  exit 1
fi
if [[ $lint -ne 0 ]]; then
  echo "FAILED (formatting or clippy)"
  exit 1
fi
if [[ $fuzz -ne 0 ]]; then
  echo "FAILED (fuzz smoke: a target crashed, leaked, hung or ran out of memory; its line above names the input)"
  exit 1
fi
