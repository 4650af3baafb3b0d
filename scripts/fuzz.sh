#!/usr/bin/env bash
# Fuzzes pullguard's parsers and trust core with cargo-fuzz (libFuzzer, AddressSanitizer):
# the targets in tests/fuzz/fuzz_targets/ (tests/fuzz/README.md says what each covers).
# Installs cargo-fuzz first when it is missing, then builds every target.
#
# Usage:
#   scripts/fuzz.sh smoke [SECONDS]            every target from its seeds, SECONDS in all
#                                              (default 60, split evenly), on a copy of the
#                                              seeds: the tree is not changed
#   scripts/fuzz.sh long [RUNS] [TARGET...]    each target (default all) for RUNS executions
#                                              (default 10,000,000), one after another, on a
#                                              corpus kept across runs in $PULLGUARD_FUZZ_OUT,
#                                              started from the seeds and the kept corpus;
#                                              appends its summary lines to
#                                              $PULLGUARD_FUZZ_OUT/ledger.txt
#   scripts/fuzz.sh keep [TARGET...]           merge a long run's corpus into the committed one
#                                              (tests/fuzz/corpus/TARGET.tar.gz: the smallest
#                                              set with the same coverage), so the next
#                                              machine's long run goes on from where this one
#                                              got
#   scripts/fuzz.sh build                      build the targets only
#   scripts/fuzz.sh repro TARGET FILE...       run TARGET on FILE(s) (a crash reproducer)
#   scripts/fuzz.sh tmin TARGET FILE           minimise a crash reproducer (cargo fuzz tmin)
#   scripts/fuzz.sh seeds                      regenerate tests/fuzz/seeds/ (deterministic)
#
# Prints one line per target: executions, executions per second, coverage (libFuzzer's
# `cov:` edges and `ft:` features), corpus size and peak RSS. Exits non-zero when any
# target crashes or panics, leaks, hangs (-timeout) or runs out of memory (-rss_limit_mb,
# -malloc_limit_mb); the input that did it is kept in $PULLGUARD_FUZZ_OUT/artifacts/TARGET/
# and the line names it.
#
# Environment:
#   PULLGUARD_FUZZ_TARGET_DIR  build directory (default /var/tmp/pullguard-fuzz-target if
#                              writable, else <repo>/target/fuzz): not the tests' one, the
#                              sanitizer flags would rebuild everything there
#   PULLGUARD_FUZZ_OUT         corpora of long runs, artifacts, logs (default
#                              /var/tmp/pullguard-fuzz, else <repo>/target/fuzz-out)
#   PULLGUARD_FUZZ_SECONDS     long: stop each target after this many seconds even if it
#                              has not made RUNS executions (a run on a machine with a
#                              deadline; the summary gives the executions made)
#   PULLGUARD_TOOLS            where cargo-fuzz is installed (default /var/tmp/pullguard-tools,
#                              else <repo>/.tools)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
fuzz_dir=tests/fuzz
cargo_fuzz_version=0.13.2
# Memory and time bounds of every run.
rss_limit_mb=1024
malloc_limit_mb=512
timeout_s=10
# A smaller quarantine than ASan's 256 MB default: the RSS limit is for the target's memory.
asan_options=detect_odr_violation=0:detect_leaks=1:quarantine_size_mb=64

log() { echo "fuzz: $*" >&2; }
die() { echo "fuzz: error: $*" >&2; exit 2; }

# A directory under /var/tmp shared across clones when the machine allows it (as setup.sh
# does for the build), else one inside the repository's ignored target/.
shared_dir() { # name fallback
  if mkdir -p "/var/tmp/$1" 2>/dev/null && [[ -w /var/tmp/$1 ]]; then
    echo "/var/tmp/$1"
  else
    mkdir -p "$2" && echo "$2"
  fi
}

target_dir=${PULLGUARD_FUZZ_TARGET_DIR:-$(shared_dir pullguard-fuzz-target "$repo_root/target/fuzz")}
out=${PULLGUARD_FUZZ_OUT:-$(shared_dir pullguard-fuzz "$repo_root/target/fuzz-out")}
tools=${PULLGUARD_TOOLS:-$(shared_dir pullguard-tools "$repo_root/.tools")}

# The largest input each target is given: enough for its seeds, small enough that most
# time goes to new inputs rather than to parsing long ones.
declare -A max_len=([bundle]=65536 [workflow]=16384 [schema]=16384 [cjson]=16384)
default_max_len=8192

setup() {
  # protoc (the plugin links the generated gRPC code) and the usual environment.
  # shellcheck source=scripts/setup.sh
  . scripts/setup.sh >&2
  if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -qx "cargo-fuzz $cargo_fuzz_version"; then
    log "installing cargo-fuzz $cargo_fuzz_version into $tools"
    CARGO_TARGET_DIR=$tools/build cargo install --quiet --locked --root "$tools" \
      cargo-fuzz --version "$cargo_fuzz_version" </dev/null >&2
  fi
  export PATH=$tools/bin:$PATH
}

targets() {
  sed -n 's/^name = "\(.*\)"$/\1/p' "$fuzz_dir/Cargo.toml" | grep -vx 'pullguard-fuzz'
}

# cargo-fuzz needs -Z flags: RUSTC_BOOTSTRAP lets the pinned stable toolchain take them.
# The wrapper leaves cryptography out of the coverage instrumentation (see the script).
cargo_fuzz() {
  RUSTC_BOOTSTRAP=1 RUSTC_WRAPPER=$repo_root/$fuzz_dir/rustc-wrapper.sh \
    cargo fuzz "$@" --fuzz-dir "$fuzz_dir" --target-dir "$target_dir"
}

build() {
  local started=$SECONDS
  log "building the fuzz targets in $target_dir"
  cargo_fuzz build </dev/null >&2
  log "built in $((SECONDS - started)) s"
}

binary() { echo "$target_dir/x86_64-unknown-linux-gnu/release/$1"; }

# The last value of libFuzzer's `name: value` status fields, or of a final stat.
field() { # log name
  grep -Eo "$2: *[0-9]+[A-Za-z]*" "$1" | tail -n 1 | sed -E 's/.*: *//' || true
}
final_stat() { # log name
  sed -n "s/^stat::$2: *//p" "$1" | tail -n 1
}

# Runs one target; prints its summary line; returns non-zero on a finding.
run_target() { # target corpus-dir log budget-args...
  local target=$1 corpus=$2 logfile=$3
  shift 3
  local artifacts=$out/artifacts/$target
  mkdir -p "$artifacts" "$corpus"
  local started=$SECONDS status=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-$asan_options} \
    "$(binary "$target")" "$@" \
    -max_len="${max_len[$target]:-$default_max_len}" \
    -rss_limit_mb=$rss_limit_mb -malloc_limit_mb=$malloc_limit_mb -timeout=$timeout_s \
    -artifact_prefix="$artifacts/" -print_final_stats=1 -close_fd_mask=1 \
    "$corpus" </dev/null >"$logfile" 2>&1 || status=$?
  local elapsed=$((SECONDS - started))
  local execs rate rss cov ft corp
  execs=$(final_stat "$logfile" number_of_executed_units)
  rate=$(final_stat "$logfile" average_exec_per_sec)
  rss=$(final_stat "$logfile" peak_rss_mb)
  cov=$(field "$logfile" cov)
  ft=$(field "$logfile" ft)
  corp=$(grep -Eo 'corp: [0-9]+/[0-9]+[A-Za-z]*' "$logfile" | tail -n 1 | sed 's/corp: //' || true)
  local finding=
  if grep -q 'ERROR: LeakSanitizer' "$logfile"; then
    finding=leak
  elif grep -q 'ERROR: libFuzzer: timeout' "$logfile"; then
    finding=timeout
  elif grep -Eq 'ERROR: libFuzzer: (out-of-memory|malloc)' "$logfile"; then
    finding="out of memory"
  elif grep -Eq 'ERROR: (AddressSanitizer|libFuzzer)|panicked at' "$logfile"; then
    finding=crash
  elif ((status != 0)); then
    finding="exit status $status"
  fi
  printf 'fuzz %-12s %s execs (%s/s), cov %s ft %s, corpus %s, peak rss %s MB, %d s' \
    "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$elapsed"
  if [[ -z $finding ]]; then
    echo ": ok"
    return 0
  fi
  local artifact
  artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$logfile" | tail -n 1)
  echo ": FAILED ($finding)${artifact:+, input $artifact}, log $logfile"
  [[ -n $artifact ]] && echo "  reproduce: scripts/fuzz.sh repro $target $artifact"
  return 1
}

smoke() {
  local total=${1:-60}
  [[ $total =~ ^[0-9]+$ && $total -gt 0 ]] || die "smoke: SECONDS must be a positive number"
  setup
  build
  local list
  mapfile -t list < <(targets)
  local each=$((total / ${#list[@]}))
  ((each >= 1)) || each=1
  local work
  work=$(mktemp -d)
  # Kept on a failure (the log is named); removed otherwise.
  local failed=0 started=$SECONDS
  log "smoke: ${#list[@]} targets, $each s each"
  for target in "${list[@]}"; do
    mkdir -p "$work/corpus"
    cp -R "$fuzz_dir/seeds/$target" "$work/corpus/$target"
    run_target "$target" "$work/corpus/$target" "$work/$target.log" -max_total_time="$each" ||
      failed=1
  done
  echo "fuzz smoke: ${#list[@]} targets in $((SECONDS - started)) s"
  if ((failed)); then
    echo "fuzz smoke: FAILED (logs in $work)"
    return 1
  fi
  rm -rf "$work"
}

long() {
  local runs=${1:-10000000}
  [[ $runs =~ ^[0-9]+$ ]] || die "long: RUNS must be a number"
  shift || true
  setup
  build
  local list
  if (($#)); then list=("$@"); else mapfile -t list < <(targets); fi
  local failed=0
  for target in "${list[@]}"; do
    [[ -d $fuzz_dir/seeds/$target ]] || die "no such target: $target"
    local corpus=$out/corpus/$target
    mkdir -p "$corpus" "$out/logs"
    cp -R "$fuzz_dir/seeds/$target/." "$corpus/"
    [[ -f $fuzz_dir/corpus/$target.tar.gz ]] && tar -xzf "$fuzz_dir/corpus/$target.tar.gz" -C "$corpus"
    local budget=(-runs="$runs")
    [[ -n ${PULLGUARD_FUZZ_SECONDS:-} ]] && budget+=(-max_total_time="$PULLGUARD_FUZZ_SECONDS")
    log "long: $target, $runs runs (log $out/logs/$target.log)"
    local line status=0
    line=$(run_target "$target" "$corpus" "$out/logs/$target.log" "${budget[@]}") || status=1
    echo "$line"
    echo "$(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?') $line" \
      >>"$out/ledger.txt"
    ((status == 0)) || failed=1
  done
  return $failed
}

keep() {
  setup
  build
  local list
  if (($#)); then list=("$@"); else mapfile -t list < <(targets); fi
  mkdir -p "$fuzz_dir/corpus"
  for target in "${list[@]}"; do
    local from=$out/corpus/$target kept=$fuzz_dir/corpus/$target.tar.gz
    [[ -d $from ]] || die "keep: no long-run corpus for $target in $from"
    local work
    work=$(mktemp -d)
    mkdir -p "$work/merged" "$work/kept"
    [[ -f $kept ]] && tar -xzf "$kept" -C "$work/kept"
    # -merge=1 takes the inputs that add coverage, seeds first: none are repeated.
    ASAN_OPTIONS=${ASAN_OPTIONS:-$asan_options} "$(binary "$target")" -merge=1 \
      -max_len="${max_len[$target]:-$default_max_len}" -rss_limit_mb=$rss_limit_mb \
      -malloc_limit_mb=$malloc_limit_mb -timeout=$timeout_s -close_fd_mask=1 \
      "$work/merged" "$fuzz_dir/seeds/$target" "$work/kept" "$from" \
      </dev/null >"$out/logs/$target.merge.log" 2>&1 ||
      die "keep: merging $target failed (log $out/logs/$target.merge.log)"
    # The seeds are committed already: keep only what they do not hold. Inputs are named
    # by their SHA-1, as libFuzzer names them.
    local seed
    for seed in "$fuzz_dir/seeds/$target"/*; do
      rm -f "$work/merged/$(sha1sum <"$seed" | cut -c1-40)"
    done
    # The same inputs make the same archive: sorted, no times, no owners.
    (cd "$work/merged" && find . -type f -printf '%P\n' | LC_ALL=C sort |
      tar --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - -T - | gzip -9n) >"$kept"
    echo "fuzz keep $target: $(find "$work/merged" -type f | wc -l) inputs," \
      "$(du -sh "$work/merged" | cut -f1) ($(du -h "$kept" | cut -f1) archived in $kept)"
    rm -rf "$work"
  done
}

case ${1:-} in
  smoke) shift; smoke "$@" ;;
  long) shift; long "$@" ;;
  keep) shift; keep "$@" ;;
  build) setup; build ;;
  repro)
    (($# >= 3)) || die "usage: scripts/fuzz.sh repro TARGET FILE..."
    setup; build
    target=$2; shift 2
    ASAN_OPTIONS=${ASAN_OPTIONS:-$asan_options} "$(binary "$target")" \
      -rss_limit_mb=$rss_limit_mb -malloc_limit_mb=$malloc_limit_mb -timeout=$timeout_s "$@" </dev/null
    ;;
  tmin)
    (($# == 3)) || die "usage: scripts/fuzz.sh tmin TARGET FILE"
    setup
    cargo_fuzz tmin "$2" "$3" -- -rss_limit_mb=$rss_limit_mb -timeout=$timeout_s </dev/null
    ;;
  seeds)
    setup
    (cd "$fuzz_dir" && cargo run --quiet --example seeds --target-dir "$target_dir" </dev/null)
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
    exit 2
    ;;
esac
