#!/usr/bin/env bash
# Builds the .deb: the static hook (packaging/hook: glibc linked in, LTO, no dynamic
# loader; containerd starts it once per pull), then `cargo deb` for the rest.
#   packaging/build-deb.sh        -> prints the path of the .deb
# Needs cargo-deb (installed here with cargo if missing) and libc6-dev (static glibc).
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
# shellcheck source=scripts/setup.sh
. scripts/setup.sh >&2
command -v cargo-deb >/dev/null ||
  CARGO_TARGET_DIR=$CARGO_TARGET_DIR/cargo-deb cargo install --locked --version 3.8.0 cargo-deb >&2
triple=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps RUSTFLAGS off build scripts and proc macros (which cannot be static).
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --release \
  --manifest-path packaging/hook/Cargo.toml --target "$triple" \
  --target-dir "$CARGO_TARGET_DIR/static-hook" >&2
mkdir -p packaging/hook/out
cp "$CARGO_TARGET_DIR/static-hook/$triple/release/pullguard-hook" packaging/hook/out/pullguard-hook
cargo deb --locked -p pullguard --dbgsym >&2
ls -t "$CARGO_TARGET_DIR"/debian/pullguard_*.deb | head -1
