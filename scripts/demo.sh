#!/usr/bin/env bash
# pullguard demo: a real registry, a signed image, the node daemon, an admitted pull check
# (again from the daemon's cache) and rejected attacks.
#   1. Debian's docker-registry starts on 127.0.0.1 (storage in a temp dir); two small images
#      are pushed to it;
#   2. a publisher creates keys and a scope, delegates `app` to a team, signs app:1 and
#      publishes the TUF metadata into the registry itself;
#   3. `pullguard serve` starts with a generated config; `pullguard verify app:1` asks it
#                                                                  -> admitted, then cached;
#   4. the registry points app:1 at another image (substitution)    -> rejected: digest_mismatch;
#   5. the registry replays an old timestamp                        -> rejected: rollback;
#   6. two days pass and nobody re-signs the timestamp (freeze)     -> rejected: expired;
#   7. the registry is repaired: `pullguard refresh`, admitted again, `pullguard status`.
# (scripts/demo-tuf.sh shows the trust core against a python-tuf repository.)
# Installs what it needs first (scripts/setup.sh). Leaves nothing running.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$work"

pg() { "$pullguard" "$@"; }
# Runs a check that must be denied for REASON.
expect_denied() {
  local reason=$1; shift
  local out
  if out=$("$@" 2>&1); then
    echo "UNEXPECTED: admitted: $out"; exit 1
  fi
  echo "$out"
  grep -q "^DENY $reason " <<<"$out" || { echo "UNEXPECTED: not a $reason denial"; exit 1; }
}

step "1. a registry on 127.0.0.1, and two images pushed to it"
start_registry
push_image acme/app 1 "the real application"
push_image acme/tools 1 "something else entirely"
printf '[registries."%s"]\nplain_http = true\n' "$host" > pullguard.toml
export PULLGUARD_CONFIG=$work/pullguard.toml

step "2. keys, a scope, a delegation to the team, a signature, and the metadata published"
for k in root targets snapshot timestamp team; do pg key generate "$k.key" >/dev/null; done
pg repo init --scope "$host/acme" --root-key root.key --targets-key targets.key \
  --snapshot-key snapshot.key --timestamp-key timestamp.key --timestamp-expires 1d
pg repo delegate --role team --paths 'app:*' --key team.key.pub --signing-key targets.key
pg sign "$host/acme/app:1" --key team.key
pg repo snapshot --key snapshot.key
pg repo timestamp --key timestamp.key
pg repo publish | tail -1
old_timestamp=$(curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$host/v2/acme/trust/manifests/timestamp" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
# A routine timestamp refresh, so there is an older one to replay later.
pg repo timestamp --key timestamp.key >/dev/null
pg repo publish | tail -1

# Starts `pullguard serve` with CONFIG (under any command prefix given after it), waits for
# SOCKET, and stops it at exit.
start_daemon() { # config socket [prefix...]
  local config=$1 socket=$2; shift 2
  "$@" "$pullguard" --config "$config" serve 2>>daemon.log &
  local pid=$!
  on_exit "kill -TERM $pid && wait $pid"
  local _
  for _ in $(seq 200); do [[ -S $socket ]] && return 0; sleep 0.05; done
  echo "the daemon did not start:"; cat daemon.log; return 1
}

step "3. the node daemon starts; the runtime would ask it about app:1 before each pull"
node_config "$work/run/pullguard.sock" "$work/node-state" > node.toml
start_daemon node.toml "$work/run/pullguard.sock"
sed 's/^/  daemon: /' daemon.log
verify() { pg --config node.toml verify "$host/acme/app:1" "$@"; }
verify
verify   # the same image again: answered from the verdict cache

step "4. the registry points app:1 at another image"
push_image acme/app 1 "something else entirely" >/dev/null
expect_denied digest_mismatch verify
push_image acme/app 1 "the real application" >/dev/null   # undo

step "5. the registry replays the older timestamp"
curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$host/v2/acme/trust/manifests/timestamp" > current.json
curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$host/v2/acme/trust/manifests/$old_timestamp" > old.json
curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @old.json \
  "http://$host/v2/acme/trust/manifests/timestamp" >/dev/null
pg --config node.toml refresh || true   # the daemon's next refresh sees it at once
expect_denied rollback verify
# undo: the current timestamp again
curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @current.json \
  "http://$host/v2/acme/trust/manifests/timestamp" >/dev/null

step "6. two days later, nobody has re-signed the timestamp (a node whose clock moved on)"
node_config "$work/run/later.sock" "$work/later-state" > later.toml
# libfaketime moves only the wall clock (the daemon's timers keep real time); preloaded
# directly, so that the daemon itself is the process stopped at exit.
faketime_lib=$(dpkg -L libfaketime | grep -m1 '/libfaketimeMT\.so\.1$')
start_daemon later.toml "$work/run/later.sock" \
  env LD_PRELOAD="$faketime_lib" FAKETIME="+2d" FAKETIME_DONT_FAKE_MONOTONIC=1
expect_denied expired pg --config later.toml verify "$host/acme/app:1"

step "7. the registry serves current metadata again: the first node refreshes, admits, and says how it stands"
pg --config node.toml refresh >/dev/null
verify
pg --config node.toml status

printf '\nDemo complete: one image admitted (then from cache), three attacks rejected with their reasons.\n'
