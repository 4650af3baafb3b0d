#!/usr/bin/env bash
# pullguard TUF demo: the trust core against a python-tuf repository, for real.
#   1. python-tuf generates a TUF repository (ed25519 keys), served over HTTP on 127.0.0.1;
#   2. pullguard tuf-client bootstraps from its root, refreshes, downloads a verified target;
#   3. the repository replays an old timestamp            -> rejected: rollback;
#   4. the repository serves an expired timestamp (freeze) -> rejected: expired;
#   5. the node clock is set back two days                 -> rejected: clock rollback.
# Installs what it needs first (scripts/setup.sh). Leaves nothing running.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
py=$PULLGUARD_VENV/bin/python

repo=$work/repository
state=$work/client-metadata
targets=$work/client-targets

client() { "$pullguard" tuf-client --metadata-url "$url/metadata/" --metadata-dir "$state" "$@"; }
expect_rejected() {
  local what=$1; shift
  if out=$("$@" 2>&1); then
    echo "UNEXPECTED: $what was accepted"; exit 1
  fi
  echo "rejected as expected: ${out#pullguard: }"
}
trusted_version() { "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["version"])' "$state/$1.json"; }

step "1. python-tuf generates a repository with one target, served on 127.0.0.1"
"$py" tests/interop/tufrepo.py "$repo" init --keytype ed25519 \; add-target "debian:9.9" --data "a signed manifest"
port=$(free_port)
"$py" -m http.server --bind 127.0.0.1 --directory "$repo" "$port" >/dev/null 2>&1 &
on_exit "kill $!"
url=http://127.0.0.1:$port
wait_http "$url/metadata/1.root.json"
echo "serving $repo at $url"

step "2. bootstrap from root v1, refresh, download and verify the target"
"$pullguard" tuf-client --metadata-dir "$state" init "$repo/metadata/1.root.json"
client -v refresh
client -v --target-name "debian:9.9" --target-dir "$targets" --target-base-url "$url/targets/" download
echo "downloaded: $(cat "$targets/debian%3A9.9")"
"$py" tests/interop/tufrepo.py "$repo" publish timestamp
client refresh
echo "trusted timestamp version: $(trusted_version timestamp)"

step "3. the repository replays timestamp v1 (rollback attack)"
"$py" tests/interop/tufrepo.py "$repo" serve-old timestamp 1
expect_rejected "a replayed timestamp" client refresh
echo "trusted timestamp version is still: $(trusted_version timestamp)"

step "4. the repository serves a timestamp that has expired (freeze attack)"
"$py" tests/interop/tufrepo.py "$repo" publish timestamp --expired
expect_rejected "an expired timestamp" client refresh
echo "trusted timestamp version is still: $(trusted_version timestamp)"

step "5. the node clock is moved two days back (to revive expired metadata)"
expect_rejected "a clock behind the latest time seen" faketime -f "-2d" "$pullguard" tuf-client \
  --metadata-url "$url/metadata/" --metadata-dir "$state" refresh

printf '\nDemo complete: one verified download, three attacks rejected with their reasons.\n'
