#!/usr/bin/env bash
# Whole-process comparison with python-tuf (DESIGN §8): a TUF refresh from an HTTP server on
# 127.0.0.1, one target lookup and its download and check, from a fresh trusted state holding
# only root.json, for
# repositories of 1, 1,000 and 10,000 targets. Both clients run as whole processes under
# hyperfine; the repository is written by python-tuf. Installs hyperfine (Debian package)
# when it is missing.
#   benches/compare/run.sh [--release]     (default: the dev build the tests use)
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo_root"
# shellcheck source=scripts/setup.sh
. scripts/setup.sh >/dev/null
apt_ensure hyperfine >&2
profile=debug
if [[ ${1:-} == --release ]]; then
  profile=release
  cargo build --quiet --locked --release --bin pullguard
else
  cargo test --quiet --locked --workspace --no-run
fi
pullguard=$CARGO_TARGET_DIR/$profile/pullguard
py=$PULLGUARD_VENV/bin/python

work=$(mktemp -d)
server_pid=
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$py" -m http.server --bind 127.0.0.1 --directory "$work" "$port" >/dev/null 2>&1 &
server_pid=$!

for n in 1 1000 10000; do
  "$py" benches/compare/tuf_repo.py make "$work/r$n" "$n"
  url=http://127.0.0.1:$port/r$n/metadata/
  for _ in $(seq 50); do curl -sf "$url/timestamp.json" >/dev/null && break; sleep 0.1; done
  target="images/app-0.json"
  turl=http://127.0.0.1:$port/r$n/targets/
  echo "== $n target(s) ($profile build)"
  hyperfine -N --warmup 3 --runs 20 \
    --prepare "bash -c 'rm -rf $work/pg $work/py $work/out && mkdir -p $work/pg $work/py $work/out && cp $work/r$n/metadata/1.root.json $work/pg/root.json && cp $work/r$n/metadata/1.root.json $work/py/root.json'" \
    -n pullguard "$pullguard tuf-client --metadata-url $url --metadata-dir $work/pg --target-name $target --target-dir $work/out --target-base-url $turl download" \
    -n python-tuf "$py benches/compare/tuf_repo.py client $url $work/py $target $turl $work/out" \
    2>&1 | grep -E 'Time|±|faster|^  [a-z]'
done
