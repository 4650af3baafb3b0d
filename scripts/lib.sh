# Shared by the demo scripts (sourced, not run): set-up, the build the tests use, and small
# helpers. After sourcing: $pullguard is the binary, $work a temp dir removed on exit (add
# clean-up steps with `on_exit CMD`).
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
# shellcheck source=scripts/setup.sh
. scripts/setup.sh

echo "== building pullguard"
# The same build as the test suite (one RocksDB build serves both).
cargo test --quiet --locked --workspace --no-run
pullguard=$CARGO_TARGET_DIR/debug/pullguard

work=$(mktemp -d)
exit_steps=()
on_exit() { exit_steps+=("$*"); }
run_exit_steps() {
  local s
  for s in "${exit_steps[@]}"; do eval "$s" || true; done
  rm -rf "$work"
}
trap run_exit_steps EXIT

step() { printf '\n== %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits until URL answers, or fails after 10 s.
wait_http() {
  local _
  for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
  echo "no answer from $1" >&2
  return 1
}
