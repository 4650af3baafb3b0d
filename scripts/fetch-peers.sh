#!/usr/bin/env bash
# Makes peer tools that tests run against (oras, cosign, containerd, ...) available, from the
# Debian packages of a Debian suite newer than the machine's, without touching the system's apt
# state or /usr: a throw-away apt configuration (sources list, lists, cache, status) is built at
# run time from the mirror that the machine's own apt sources name, `apt-get download` fetches
# the .deb and `dpkg-deb -x` unpacks it into a private prefix.
#
# Usage: scripts/fetch-peers.sh [PACKAGE[>=VERSION]...]       (default: oras cosign)
#   e.g. scripts/fetch-peers.sh oras cosign 'containerd>=2.0'
#   PACKAGE is a Debian binary package; the binary looked for is the one of the same name
#   (true of every peer fetched so far). With >=VERSION, suites whose package is older are
#   passed over.
#
# Output: one NAME=/absolute/path/to/binary line per package on stdout (and nothing else, so
# that tests can parse it); progress and versions on stderr. Exits non-zero with a message when
# a package can't be found in any suite or its binary doesn't run here.
#
# Idempotent: a package whose binary is already unpacked (and recorded in the prefix's
# .installed/ stamps) is not downloaded again; concurrent runs are serialised with flock.
#
# Environment:
#   PULLGUARD_PEERS         install prefix (default /var/tmp/pullguard-peers if writable,
#                           else <repo>/.peers); binaries end up in $PULLGUARD_PEERS/usr/bin
#   PULLGUARD_PEERS_SUITES  suites to try, in order (default: "trixie forky sid")
#   PULLGUARD_PEERS_MIRROR  archive URI to use instead of the one found in the apt sources
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "fetch-peers: $*" >&2; }
die() { echo "fetch-peers: error: $*" >&2; exit 1; }

# --- what to fetch -------------------------------------------------------------------------
(($# > 0)) || set -- oras cosign
# Minimum versions that apply when none is given: the tests need containerd 2.x (trixie has
# 1.7). Ask for 'containerd>=0' to take whatever the first suite has.
declare -A default_min=([containerd]=2.0)
declare -a pkgs=()
declare -A min_ver=()
for arg in "$@"; do
  case $arg in
    *'>='*) p=${arg%%>=*}; min_ver[$p]=${arg#*>=} ;;
    *) p=$arg; [[ -z ${default_min[$p]:-} ]] || min_ver[$p]=${default_min[$p]} ;;
  esac
  [[ $p =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || die "not a Debian package name: '$arg'"
  pkgs+=("$p")
done

version_cmd() { # how to ask a binary for its version
  case $1 in
    oras | cosign) echo version ;;
    *) echo --version ;;
  esac
}

# --- where to install ----------------------------------------------------------------------
if [[ -n ${PULLGUARD_PEERS:-} ]]; then
  prefix=$PULLGUARD_PEERS
elif mkdir -p /var/tmp/pullguard-peers 2>/dev/null && [[ -w /var/tmp/pullguard-peers ]]; then
  prefix=/var/tmp/pullguard-peers
else
  prefix=$repo_root/.peers
fi
mkdir -p "$prefix/.installed" || die "cannot create the prefix $prefix"
prefix=$(cd "$prefix" && pwd -P)

exec 9>"$prefix/.lock"
flock -w 900 9 || die "timed out waiting for another fetch-peers run (lock $prefix/.lock)"

find_bin() { # prints the unpacked binary's path, if any
  local b=$1 d
  for d in usr/bin usr/sbin bin sbin; do
    if [[ -f $prefix/$d/$b && -x $prefix/$d/$b ]]; then
      echo "$prefix/$d/$b"
      return 0
    fi
  done
  return 1
}

# A package counts as present when its stamp and its binary are there and the stamped version
# satisfies the requested minimum.
present() {
  local p=$1 stamp=$prefix/.installed/$1 ver
  [[ -f $stamp ]] && find_bin "$p" >/dev/null || return 1
  ver=$(awk '{print $1; exit}' "$stamp")
  [[ -z ${min_ver[$p]:-} ]] || dpkg --compare-versions "$ver" ge "${min_ver[$p]}"
}

declare -a todo=()
for p in "${pkgs[@]}"; do
  present "$p" || todo+=("$p")
done

# --- the machine's own mirror --------------------------------------------------------------
# Prints "URI<TAB>KEYRING" for the archive to use: the first non-security source whose suites
# include the machine's codename (that is the distribution's own archive, not a third-party
# repository), else the first non-security source at all. KEYRING is its Signed-By file, or
# empty. Reads deb822 *.sources files and one-line sources.list / *.list files in apt's order.
find_mirror() {
  local codename files=() f
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] && files+=("$f")
  done
  ((${#files[@]})) || return 1
  # One record per URI: "URI<TAB>SUITES<TAB>SIGNED-BY".
  local records
  records=$(
    for f in "${files[@]}"; do
      if [[ $f == *.sources ]]; then
        awk '
          function flush() {
            if (uris != "" && types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
              n = split(uris, u, /[ \t]+/)
              for (i = 1; i <= n; i++) if (u[i] != "") printf "%s\t%s\t%s\n", u[i], suites, signed
            }
            types = uris = suites = signed = enabled = ""; field = ""
          }
          /^[ \t]*#/ { next }
          /^[ \t]*$/ { flush(); next }
          /^[ \t]/ { next }   # continuation lines (an inline key): not a file, ignored
          {
            key = tolower($0); sub(/:.*/, "", key)
            val = $0; sub(/^[^:]*:[ \t]*/, "", val); sub(/[ \t]+$/, "", val)
            if (key == "types") types = val
            else if (key == "uris") uris = val
            else if (key == "suites") suites = val
            else if (key == "signed-by") signed = (val ~ /^\//) ? val : ""
            else if (key == "enabled") enabled = val
          }
          END { flush() }
        ' "$f"
      else
        awk '
          /^[ \t]*deb[ \t]/ {
            line = $0; sub(/#.*/, "", line); signed = ""
            if (match(line, /\[[^]]*\]/)) {
              opts = substr(line, RSTART + 1, RLENGTH - 2)
              line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
              n = split(opts, o, /[ \t]+/)
              for (i = 1; i <= n; i++) if (o[i] ~ /^signed-by=/) { signed = o[i]; sub(/^signed-by=/, "", signed) }
            }
            n = split(line, w, /[ \t]+/)
            j = (w[1] == "") ? 2 : 1
            if (w[j] == "deb" && w[j + 1] != "") printf "%s\t%s\t%s\n", w[j + 1], w[j + 2], signed
          }
        ' "$f"
      fi
    done
  )
  local uri suites signed first="" chosen=""
  while IFS=$'\t' read -r uri suites signed; do
    [[ -n $uri ]] || continue
    case $uri in http://* | https://* | mirror+http://* | mirror+https://*) ;; *) continue ;; esac
    [[ $uri == *-security* || " $suites " == *-security\ * ]] && continue
    [[ -n $first ]] || first="$uri"$'\t'"$signed"
    if [[ -n $codename && " $suites " == *" $codename "* ]]; then
      chosen="$uri"$'\t'"$signed"
      break
    fi
  done <<<"$records"
  [[ -n $chosen ]] || chosen=$first
  [[ -n $chosen ]] || return 1
  echo "$chosen"
}

# --- fetch what is missing -----------------------------------------------------------------
if ((${#todo[@]})); then
  start=$SECONDS
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    die "apt-get and dpkg-deb are needed (a Debian machine)"
  fi
  if [[ -n ${PULLGUARD_PEERS_MIRROR:-} ]]; then
    mirror=$PULLGUARD_PEERS_MIRROR keyring=""
  else
    found=$(find_mirror) || die "no usable mirror URI in /etc/apt/sources.list{,.d/*.list,.d/*.sources}; set PULLGUARD_PEERS_MIRROR"
    mirror=${found%%$'\t'*} keyring=${found#*$'\t'}
  fi
  mirror=${mirror%/}
  [[ -n $keyring && -r $keyring ]] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  if [[ -r $keyring ]]; then
    src_opts="[signed-by=$keyring]"
  else
    log "warning: no archive keyring found; the newer suite's index is taken unverified (trusted=yes)"
    src_opts="[trusted=yes]"
  fi
  arch=$(dpkg --print-architecture)
  log "fetching ${todo[*]} (mirror $mirror, keyring ${keyring:-none}) into $prefix"

  tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch-peers.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp" # apt's download sandbox user must reach its partial/ directories

  suites=${PULLGUARD_PEERS_SUITES:-trixie forky sid}
  remaining=("${todo[@]}")
  for suite in $suites; do
    ((${#remaining[@]})) || break
    st=$tmp/$suite
    mkdir -p "$st"/{lists/partial,cache/archives/partial,parts,prefs,trusted,debs}
    : >"$st/status"
    echo "deb $src_opts $mirror $suite main" >"$st/sources.list"
    # Read before apt.conf.d is: keep the system's apt configuration parts (and their hooks, such
    # as refreshing the system's AppStream cache after an update) out of this apt's way.
    printf 'Dir::Etc::Parts "%s";\nDir::Etc::main "/dev/null";\n' "$st/parts" >"$st/apt.conf"
    apt_opts=(
      -o "Dir::Etc::SourceList=$st/sources.list"
      -o "Dir::Etc::SourceParts=$st/parts"
      -o "Dir::Etc::Preferences=/dev/null"
      -o "Dir::Etc::PreferencesParts=$st/prefs"
      -o "Dir::Etc::TrustedParts=$st/trusted"
      -o "Dir::State=$st"
      -o "Dir::State::Lists=$st/lists"
      -o "Dir::State::status=$st/status"
      -o "Dir::State::extended_states=$st/extended_states"
      -o "Dir::Cache=$st/cache"
      -o "Dir::Cache::pkgcache="
      -o "Dir::Cache::srcpkgcache="
      -o "APT::Architecture=$arch"
      -o "APT::Architectures=$arch"
      -o "Acquire::Languages=none"
      -o "Acquire::GzipIndexes=true"
      -o "Acquire::Retries=3"
    )
    # The system's proxy settings still apply, and so do its Check-Valid-Until / Check-Date
    # (a machine whose mirror is a frozen snapshot turns them off; signatures are still checked).
    while IFS= read -r line; do
      if [[ $line =~ ^(Acquire::[A-Za-z]+::Proxy|Acquire::Check-Valid-Until|Acquire::Check-Date)\ \"(.*)\"\;$ ]]; then
        apt_opts+=(-o "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
      fi
    done < <(apt-config dump 2>/dev/null || true)
    if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then
      chown _apt "$st/debs"
    fi
    run_apt() { APT_CONFIG=$st/apt.conf DEBIAN_FRONTEND=noninteractive "$@" "${apt_opts[@]}" </dev/null; }

    log "apt-get update for $suite"
    if ! out=$(run_apt apt-get -q update 2>&1); then
      echo "$out" >&2
      log "apt-get update for suite $suite failed (mirror $mirror); trying the next suite"
      continue
    fi
    if grep -qE '^(W|E): ' <<<"$out"; then grep -E '^(W|E): ' <<<"$out" >&2; fi

    still=()
    for p in "${remaining[@]}"; do
      # Every version of the package that this suite offers.
      vers=$({ run_apt apt-cache show "$p" 2>/dev/null || true; } |
        awk -v want="$p" '/^Package: /{pk = $2} /^Version: /{if (pk == want) print $2}' | sort -u)
      best=""
      for v in $vers; do
        [[ -z ${min_ver[$p]:-} ]] || dpkg --compare-versions "$v" ge "${min_ver[$p]}" || continue
        if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
      done
      if [[ -z $best ]]; then
        if [[ -n $vers ]]; then
          log "$suite has $p ${vers//$'\n'/ }, older than the ${min_ver[$p]} asked for"
        else
          log "$suite has no package $p"
        fi
        still+=("$p")
        continue
      fi
      log "downloading $p $best from $suite"
      (cd "$st/debs" && run_apt apt-get -q download "$p=$best" >&2) || die "apt-get download $p=$best ($suite) failed"
      debs=("$st/debs/${p}_"*.deb)
      deb=${debs[0]}
      [[ -f $deb ]] || die "apt-get download $p=$best left no .deb"
      # What the package wants from the system; a newer libc may be among them.
      deps=$(dpkg-deb -f "$deb" Depends 2>/dev/null || true)
      [[ -z $deps ]] || log "$p $best depends on: $deps (not fetched; only the binary is unpacked)"
      # Replacing another version: remove the files that one brought, then unpack.
      if [[ -f $prefix/.installed/$p.files ]]; then
        while IFS= read -r f; do
          if [[ -n $f && $f != *..* && ( -f $prefix/$f || -L $prefix/$f ) ]]; then rm -f "$prefix/$f"; fi
        done <"$prefix/.installed/$p.files"
      fi
      rm -f "$prefix/.installed/$p"
      dpkg-deb -x "$deb" "$prefix" || die "dpkg-deb -x $deb failed"
      dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./||' >"$prefix/.installed/$p.files"
      echo "$best $suite" >"$prefix/.installed/$p"
    done
    remaining=("${still[@]+"${still[@]}"}")
  done
  if ((${#remaining[@]})); then
    missing=()
    for p in "${remaining[@]}"; do missing+=("$p${min_ver[$p]:+ (>= ${min_ver[$p]})}"); done
    die "not in any of the suites ($suites): ${missing[*]}"
  fi
  log "fetched in $((SECONDS - start))s"
fi

# --- check and report ----------------------------------------------------------------------
status=0
for p in "${pkgs[@]}"; do
  b=$p
  path=$(find_bin "$b") || die "package $p was unpacked but has no binary $b in $prefix"
  if ! v=$("$path" "$(version_cmd "$b")" 2>&1); then
    echo "$v" >&2
    log "error: $path does not run on this machine (its package: $(cat "$prefix/.installed/$p"))"
    status=1
    continue
  fi
  v=$(grep -m1 -iE 'version|[0-9]+\.[0-9]+\.[0-9]+' <<<"$v" | tr -s ' \t' ' ' || true)
  log "$b: ${v:-version unknown} (package $(cat "$prefix/.installed/$p"))"
  echo "$b=$path"
done
exit "$status"
