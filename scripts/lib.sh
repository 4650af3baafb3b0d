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

# Starts Debian's docker-registry on a free loopback port, its storage in $work, and stops
# it at exit. Sets $host (127.0.0.1:PORT).
start_registry() {
  host=127.0.0.1:$(free_port)
  cat > registry.yml <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/storage}}
http: {addr: $host}
YAML
  docker-registry serve registry.yml >registry.log 2>&1 &
  registry_pid=$!
  on_exit "kill $registry_pid && wait $registry_pid"
  wait_http "http://$host/v2/"
}
# A minimal image: a config blob, one layer blob and an OCI manifest, pushed with curl.
push_image() { # repo tag content
  local repo=$1 tag=$2 content=$3 cfg layer
  printf '%s' "$content" > layer.bin
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"demo":"%s"}}}' "$content" > config.bin
  for f in config.bin layer.bin; do
    local digest="sha256:$(sha256sum "$f" | cut -d' ' -f1)"
    local location
    location=$(curl -sfi -X POST "http://$host/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [[ $location == http* ]] || location="http://$host$location"
    curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$f" "$location&digest=$digest" >/dev/null
  done
  cfg=$(sha256sum config.bin | cut -d' ' -f1); layer=$(sha256sum layer.bin | cut -d' ' -f1)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
    "$cfg" "$(stat -c %s config.bin)" "$layer" "$(stat -c %s layer.bin)" > manifest.json
  curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @manifest.json \
    "http://$host/v2/$repo/manifests/$tag" >/dev/null
  echo "pushed $host/$repo:$tag"
}
# A node's config on stdout: its daemon (socket, state and audit log), the scope
# $host/acme with its pinned root v1 from ./pullguard-repo, the registry over plain HTTP.
node_config() { # socket state-dir
  cat <<TOML
[daemon]
socket = "$1"
state_dir = "$2"
audit_log = "$2.audit.jsonl"

[[scope]]
name = "$host/acme"
root = "$work/pullguard-repo/metadata/1.root.json"

[registries."$host"]
plain_http = true
TOML
}
# The scope $host/acme published with the images given signed by its `team` role (keys
# and ./pullguard-repo in the current directory). Needs $PULLGUARD_CONFIG set.
publish_scope() { # image...
  local k image
  for k in root targets snapshot timestamp team; do "$pullguard" key generate "$k.key" >/dev/null; done
  "$pullguard" repo init --scope "$host/acme" --root-key root.key --targets-key targets.key \
    --snapshot-key snapshot.key --timestamp-key timestamp.key >/dev/null
  "$pullguard" repo delegate --role team --paths 'app:*' 'app@*' --key team.key.pub --signing-key targets.key >/dev/null
  for image in "$@"; do "$pullguard" sign "$image" --key team.key >/dev/null; done
  "$pullguard" repo snapshot --key snapshot.key >/dev/null
  "$pullguard" repo timestamp --key timestamp.key >/dev/null
  "$pullguard" repo publish >/dev/null
}
# `pullguard serve` in the background with the config in $PULLGUARD_CONFIG, once `socket`
# is there; stopped on exit.
serve_daemon() { # socket
  "$pullguard" serve 2>>daemon.log &
  local pid=$!
  on_exit "kill -TERM $pid && wait $pid"
  local _
  for _ in $(seq 200); do [[ -S $1 ]] && return 0; sleep 0.05; done
  echo "the daemon did not start:" >&2; cat daemon.log >&2; return 1
}
