#!/usr/bin/env bash
# 100,000 signed tags in one scope, one targets role against 1,024 hash bins (issue 10,
# DESIGN §3): `sign` of one more image, snapshot, timestamp and publish, and a fresh node's
# first verify of one image from a real docker-registry (its requests and the bytes it
# fetched, from the registry's own log). Release build; a few minutes.
#   benches/compare/scale.sh [IMAGES [BINS]]     (default 100000 1024)
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo_root"
# shellcheck source=scripts/setup.sh
. scripts/setup.sh >/dev/null
PULLGUARD_SCALE_IMAGES=${1:-100000} PULLGUARD_SCALE_BINS=${2:-1024} \
  cargo test --quiet --locked --release --test scale -- --ignored --nocapture 2>&1 \
  | grep -E '^(\||[0-9]+ signed|test result)'
