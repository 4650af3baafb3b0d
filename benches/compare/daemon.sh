#!/usr/bin/env bash
# Whole processes, same image, same run (issue 8 §7): `pullguard verify IMAGE@DIGEST` asking
# a warm `pullguard serve` (an answer from its verdict cache) against `cosign verify --key`
# of the same image, signed by both tools in a Debian docker-registry on 127.0.0.1. Timed
# with hyperfine; prints its table and the ratio.
#   benches/compare/daemon.sh [--release] [RUNS]   (default: the dev build the tests use, 30 runs)
# Installs hyperfine (Debian package) when it is missing; cosign comes from scripts/fetch-peers.sh.
set -euo pipefail
release=false
if [[ ${1:-} == --release ]]; then release=true; shift; fi
runs=${1:-30}
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
if $release; then
  cargo build --quiet --locked --release --bin pullguard --bin pullguard-daemon
  pullguard=$CARGO_TARGET_DIR/release/pullguard
fi
apt_ensure hyperfine >&2
cosign=$(scripts/fetch-peers.sh cosign | sed -n 's/^cosign=//p')
cd "$work"
pg() { "$pullguard" "$@"; }

start_registry
push_image acme/app 1 "the application" >/dev/null
digest=sha256:$(sha256sum manifest.json | cut -d' ' -f1)
image=$host/acme/app@$digest
node_config "$work/pullguard.sock" "$work/state" > pullguard.toml
export PULLGUARD_CONFIG=$work/pullguard.toml
publish_scope "$image"
export COSIGN_PASSWORD=pw HOME=$work
"$cosign" generate-key-pair >/dev/null 2>&1
"$cosign" sign --key cosign.key --tlog-upload=false --allow-http-registry --yes "$image" >/dev/null 2>&1

serve_daemon pullguard.sock
pg verify "$image"      # the first answer fills the cache
pg verify "$image"      # from the cache
"$cosign" verify --key cosign.pub --insecure-ignore-tlog=true --allow-http-registry "$image" >/dev/null 2>&1 \
  || { echo "cosign does not verify the image" >&2; exit 1; }

hyperfine -N --warmup 3 --runs "$runs" --export-json hyperfine.json \
  -n "pullguard verify (warm daemon)" "$pullguard verify $image" \
  -n "cosign verify --key" "$cosign verify --key cosign.pub --insecure-ignore-tlog=true --allow-http-registry $image"
python3 - <<'PY'
import json
r = json.load(open("hyperfine.json"))["results"]
pg, co = r[0]["median"], r[1]["median"]
print(f"median: pullguard {pg*1000:.2f} ms, cosign {co*1000:.2f} ms: pullguard is {co/pg:.1f}x faster")
PY
