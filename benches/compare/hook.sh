#!/usr/bin/env bash
# The verifier hook as containerd runs it, whole process (issue 9 §7): `pullguard-hook -name
# REF -digest DIGEST -stdin-media-type application/vnd.oci.descriptor.v1+json` with the
# descriptor on stdin, admitted from a warm daemon's verdict cache, against a static C
# program that exits 0 (the floor for starting any process), side by side in one hyperfine
# run. Prints hyperfine's table, then each one's median and p99 and the ratio of medians.
#   benches/compare/hook.sh [--release] [RUNS]   (default: the dev build the tests use, 1000 runs)
# Needs hyperfine >= 1.16 (for --input): the Debian package if new enough, else it is
# installed with cargo into /var/tmp/pullguard-tools. Needs gcc and libc6-dev (static libc).
set -euo pipefail
release=false
if [[ ${1:-} == --release ]]; then release=true; shift; fi
runs=${1:-1000}
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
if $release; then
  cargo build --quiet --locked --release --bin pullguard --bin pullguard-daemon --bin pullguard-hook
  pullguard=$CARGO_TARGET_DIR/release/pullguard
fi
hook=${PULLGUARD_HOOK_BIN:-$(dirname "$pullguard")/pullguard-hook}
hyperfine=hyperfine
if ! hyperfine --help 2>/dev/null | grep -q -- '--input'; then
  tools=/var/tmp/pullguard-tools
  [[ -x $tools/bin/hyperfine ]] ||
    CARGO_TARGET_DIR=$tools/build cargo install --quiet --locked --root "$tools" hyperfine --version 1.19.0
  hyperfine=$tools/bin/hyperfine
fi
cd "$work"

start_registry
push_image acme/app 1 "the application" >/dev/null
digest=sha256:$(sha256sum manifest.json | cut -d' ' -f1)
image=$host/acme/app:1
node_config "$work/pullguard.sock" "$work/state" > pullguard.toml
export PULLGUARD_CONFIG=$work/pullguard.toml PULLGUARD_SOCKET=$work/pullguard.sock
publish_scope "$image"
serve_daemon pullguard.sock
printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d}' \
  "$digest" "$(stat -c %s manifest.json)" > descriptor.json
args="-name $image -digest $digest -stdin-media-type application/vnd.oci.descriptor.v1+json"
# The first answer fills the verdict cache; the second must come from it.
# shellcheck disable=SC2086
"$hook" $args < descriptor.json
# shellcheck disable=SC2086
"$hook" $args < descriptor.json | grep -q '^ADMIT verified' || { echo "the hook does not admit" >&2; exit 1; }
printf 'int main(void) { return 0; }\n' > exit0.c
gcc -O2 -static -o exit0 exit0.c

"$hyperfine" -N --warmup 50 --runs "$runs" --input descriptor.json --export-json hook.json \
  -n "pullguard-hook (admit, warm daemon)" "$hook $args" \
  -n "static C exit 0" "$work/exit0"
python3 - <<'PY'
import json
def stats(r):
    t = sorted(r["times"])
    return r["median"] * 1000, t[min(len(t) - 1, int(len(t) * 0.99))] * 1000
hook, floor = (stats(r) for r in json.load(open("hook.json"))["results"])
print(f"hook:  median {hook[0]:.3f} ms, p99 {hook[1]:.3f} ms")
print(f"floor: median {floor[0]:.3f} ms, p99 {floor[1]:.3f} ms")
print(f"the hook takes {hook[0] / floor[0]:.2f}x the floor (median; goal <= 2x)")
PY
