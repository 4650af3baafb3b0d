#!/usr/bin/env bash
# RUSTC_WRAPPER of the fuzz build (scripts/fuzz.sh): cryptography crates are compiled
# without libFuzzer's coverage instrumentation (AddressSanitizer still instruments them).
# The targets check real signatures on every input that gets that far; instrumented, the
# data-dependent loops and comparisons of the curve and hash arithmetic fed libFuzzer
# thousands of meaningless features per check and took most of the time. The last
# -sanitizer-coverage-level given wins, so 0 here turns the instrumentation off.
set -euo pipefail
rustc=$1
shift
crate=
previous=
for arg in "$@"; do
  [[ $previous == --crate-name ]] && crate=$arg
  previous=$arg
done
case $crate in
  curve25519_dalek | ed25519_dalek | ed25519 | sha2 | ring | block_buffer | subtle)
    exec "$rustc" "$@" -Cllvm-args=-sanitizer-coverage-level=0
    ;;
esac
exec "$rustc" "$@"
