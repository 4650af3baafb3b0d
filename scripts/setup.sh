#!/usr/bin/env bash
# Installs what pullguard's build, tests and demo need on a Debian machine, idempotently:
# Debian packages (protoc, libclang for the RocksDB bindings, faketime, GNU time (peak memory
# of a process in the tests), Python venv support,
# the CNCF distribution registry for the end-to-end tests), containerd 2.x unpacked from the
# newer Debian suite,
# and a Python venv with python-tuf for the interoperability fixtures.
#
# Source this file (`. scripts/setup.sh`) to also get CARGO_TARGET_DIR and PULLGUARD_VENV
# exported; executing it only installs.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Installs the Debian packages named that are not installed yet (the benchmarks call it for
# their own tools, hyperfine).
apt_ensure() { # package...
  local p missing=() sudo_cmd=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "setup: installing Debian packages: ${missing[*]}"
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}
apt_ensure protobuf-compiler libclang-dev clang faketime time python3-venv python3-pip ca-certificates curl docker-registry openssl

# A build directory and venv shared across clones when the machine allows it: RocksDB takes
# many minutes to build from source, and CI runs on fresh clones.
shared=/var/tmp
if [[ -z ${CARGO_TARGET_DIR:-} ]]; then
  if mkdir -p "$shared/pullguard-target" 2>/dev/null && [[ -w $shared/pullguard-target ]]; then
    export CARGO_TARGET_DIR=$shared/pullguard-target
  else
    export CARGO_TARGET_DIR=$repo_root/target
  fi
fi
if [[ -z ${PULLGUARD_VENV:-} ]]; then
  if mkdir -p "$shared/pullguard-venv" 2>/dev/null && [[ -w $shared/pullguard-venv ]]; then
    export PULLGUARD_VENV=$shared/pullguard-venv
  else
    export PULLGUARD_VENV=$repo_root/.venv
  fi
fi

req=$repo_root/tests/interop/requirements.txt
stamp=$PULLGUARD_VENV/.requirements
if [[ ! -x $PULLGUARD_VENV/bin/python ]] || ! cmp -s "$req" "$stamp"; then
  echo "setup: preparing the Python venv at $PULLGUARD_VENV"
  python3 -m venv "$PULLGUARD_VENV"
  "$PULLGUARD_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req" </dev/null
  cp "$req" "$stamp"
fi

# containerd 2.x for the runtime tests: the newer Debian suite's package, unpacked into a
# private prefix (bookworm has only 1.6, which lacks the verifier hook).
"$repo_root/scripts/fetch-peers.sh" containerd >/dev/null

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is not installed; install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)" >&2
  exit 1
fi
echo "setup: ready (CARGO_TARGET_DIR=$CARGO_TARGET_DIR, PULLGUARD_VENV=$PULLGUARD_VENV)"
