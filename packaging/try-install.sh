#!/usr/bin/env bash
# Installs a pullguard .deb into a clean, minimal Debian bookworm root and checks it:
#   packaging/try-install.sh [--keep] [--fresh] [--boot] [--no-serve] PATH/TO/pullguard_*.deb
#
# The root is made once with mmdebstrap (installed from Debian if missing) and cached as
# /var/tmp/pullguard-debroot.tar ($PULLGUARD_DEBROOT to choose another file); --fresh
# makes it again. Each run unpacks the tarball into a temp dir, writes the machine's own
# Debian apt sources into it (the cache holds none), and chroots into it: dpkg -i (then
# apt-get -f install if dependencies are missing), the files, the hook in containerd's
# bin_dir and the unit (enabled), then the daemon started as the unit starts it, with no
# capabilities, asked `status` and `verify` and through the hook, stopped with SIGTERM;
# then, where systemd-nspawn is (--boot installs it), the root is booted with its own
# systemd and network namespace and pullguard.service, started at boot, is checked with
# all of its sandboxing; then remove (the hook goes), purge, and an install over a config
# written beforehand (--force-confold keeps it), purged again. Only 127.0.0.1 is
# ever named. --keep leaves the root (its path is printed); --no-serve skips starting the
# daemon (for a package whose binaries are stand-ins). Needs root. Ends with "N passed,
# N failed".
set -euo pipefail

suite=bookworm
cache=${PULLGUARD_DEBROOT:-/var/tmp/pullguard-debroot.tar}
keep=false fresh=false serve=true boot=auto deb=
for a in "$@"; do
  case $a in
    --keep) keep=true ;;
    --boot) boot=true ;;
    --fresh) fresh=true ;;
    --no-serve) serve=false ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $a" >&2; exit 64 ;;
    *) deb=$a ;;
  esac
done
[[ -n $deb && -f $deb ]] || { echo "usage: $0 [--keep] [--fresh] [--boot] [--no-serve] PACKAGE.deb" >&2; exit 64; }
[[ $(id -u) == 0 ]] || { echo "$0: needs root (chroot, mounts)" >&2; exit 1; }
deb=$(realpath "$deb")

work=$(mktemp -d "${TMPDIR:-/var/tmp}/pullguard-try.XXXXXX")
root=$work/root
daemon_pid=
mounted=()

cleanup() {
  local i
  set +e
  if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null
  fi
  # Mounts in reverse order; the tree is removed only when none is left under it.
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}"
  done
  if grep -q " $work/" /proc/mounts; then
    echo "try-install: mounts left under $work; not removing it" >&2
  elif $keep; then
    echo "try-install: root kept at $root"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0 failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
check() { # description command...
  local what=$1; shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }

# The machine's Debian apt sources, read now and never stored in the repository: one-line
# entries to $1, deb822 stanzas to $2, for $suite (the host's own codename is rewritten to
# it, so a newer host works too). Entries for other suites (third-party repositories) are
# left out, and so are files apt itself ignores.
host_sources() {
  local host_codename list=$1 d822=$2
  host_codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-$suite}")
  : > "$list"; : > "$d822"
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk -v c="$host_codename" -v s="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
        suite = $(i + 1)
        if (suite ~ ("^" c "(-updates|-security|-backports)?$")) {
          sub("^" c, s, $(i + 1)); print
        }
      }' "$f" >> "$list"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk -v c="$host_codename" -v s="$suite" '
      BEGIN { RS = ""; ORS = "\n\n" }
      {
        keep = 0; n = split($0, lines, "\n"); out = ""
        for (j = 1; j <= n; j++) {
          line = lines[j]
          if (line ~ /^Enabled:[ \t]*no/) { keep = -1 }
          if (line ~ /^Suites:/ && keep == 0) {
            m = split(substr(line, 8), ss, /[ \t]+/); new = "Suites:"
            for (k = 1; k <= m; k++) {
              if (ss[k] == "") continue
              if (ss[k] ~ ("^" c "(-updates|-security|-backports)?$")) {
                sub("^" c, s, ss[k]); keep = 1
              }
              new = new " " ss[k]
            }
            line = new
          }
          out = out line "\n"
        }
        if (keep == 1) printf "%s\n", out
      }' "$f" >> "$d822"
  done
  [[ -s $list || -s $d822 ]] || { echo "try-install: no Debian apt sources for $suite on this machine" >&2; return 1; }
}

# Boots the root (its own systemd, its own network namespace: loopback only) and runs
# pullguard.service as a node would, with all of its sandboxing; a test unit in the root
# writes "ok - ..." / "FAIL - ..." lines that are counted here.
boot_test() {
  echo "== pullguard.service under systemd (systemd-nspawn --boot)"
  local t=$root/usr/local/sbin/pullguard-boot-test
  cat > "$t" <<'SCRIPT'
#!/bin/sh
r=/pullguard-boot-result log=/pullguard-boot-log
: > $r; : > $log
t() { d=$1; shift; if "$@" >> $log 2>&1; then echo "ok - systemd: $d" >> $r; else echo "FAIL - systemd: $d" >> $r; fi; }
image=127.0.0.1:5000/acme/app@sha256:0000000000000000000000000000000000000000000000000000000000000000
t "pullguard.service is enabled" sh -c '[ "$(systemctl is-enabled pullguard.service)" = enabled ]'
i=0; while [ ! -S /run/pullguard/pullguard.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
t "it was started at boot (the socket is there)" test -S /run/pullguard/pullguard.sock
t "it runs (active, running)" sh -c '[ "$(systemctl show -p SubState --value pullguard.service)" = running ]'
pid=$(systemctl show -p MainPID --value pullguard.service)
t "it has no capabilities (effective, permitted, bounding)" \
  sh -c "grep -Eq '^CapEff:\s+0+$' /proc/$pid/status && grep -Eq '^CapPrm:\s+0+$' /proc/$pid/status && grep -Eq '^CapBnd:\s+0+$' /proc/$pid/status"
t "NoNewPrivs, and a seccomp filter" \
  sh -c "grep -Eq '^NoNewPrivs:\s+1$' /proc/$pid/status && grep -Eq '^Seccomp:\s+2$' /proc/$pid/status"
t "/ is read-only for it (ProtectSystem=strict); /var/lib/pullguard, /var/log/pullguard, /run/pullguard are not" \
  sh -c "grep -Eq '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ro[, ]' /proc/$pid/mountinfo && for d in /var/lib/pullguard /var/log/pullguard /run/pullguard; do grep -Eq \"^[0-9]+ [0-9]+ [^ ]+ [^ ]+ \$d rw[, ]\" /proc/$pid/mountinfo || exit 1; done"
t "/run/pullguard is 0755, the socket 0660; /var/lib/pullguard and /var/log/pullguard 0750" \
  sh -c '[ "$(stat -c %a /run/pullguard)" = 755 ] && [ "$(stat -c %a /run/pullguard/pullguard.sock)" = 660 ] && [ "$(stat -c %a /var/lib/pullguard)" = 750 ] && [ "$(stat -c %a /var/log/pullguard)" = 750 ]'
t "pullguard status" pullguard status
t "pullguard verify of an image in no scope: denied (exit 1)" sh -c "pullguard verify $image; [ \$? = 1 ]"
t "the hook in bin_dir gets the daemon's answer (DENY no_trust_root, naming daemon.unmatched, exit 1)" sh -c '
  d=sha256:0000000000000000000000000000000000000000000000000000000000000000
  out=$(printf "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":100}" $d |
    /opt/containerd/image-verifier/bin/pullguard-hook -name 127.0.0.1:5000/acme/app:1 -digest $d -stdin-media-type application/vnd.oci.descriptor.v1+json)
  rc=$?; echo "$out"; [ $rc = 1 ] && [ "${out%% *}" = DENY ] && case $out in *daemon.unmatched*) ;; *) exit 1 ;; esac'
t "a client under ProtectSystem=strict, with no capabilities, reaches the socket on its read-only /run (writing there fails)" \
  systemctl start pullguard-boot-client.service
t "systemctl stop pullguard.service" systemctl stop pullguard.service
t "it stopped cleanly (exit 0) and its RuntimeDirectory is gone" \
  sh -c '[ "$(systemctl show -p Result --value pullguard.service)" = success ] && [ ! -e /run/pullguard ]'
journalctl -u pullguard.service -u pullguard-boot-client.service -o cat --no-pager >> $log 2>&1
echo "end" >> $r
systemctl poweroff --no-block
SCRIPT
  chmod 755 "$t"
  cat > "$root/etc/systemd/system/pullguard-boot-test.service" <<'UNIT'
[Unit]
Description=pullguard packaging test (try-install.sh)
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/pullguard-boot-test
[Install]
WantedBy=multi-user.target
UNIT
  # Connecting to a Unix socket needs no write access to the file system it is on.
  cat > "$root/etc/systemd/system/pullguard-boot-client.service" <<'UNIT'
[Service]
Type=oneshot
ProtectSystem=strict
CapabilityBoundingSet=
NoNewPrivileges=yes
ExecStart=/bin/sh -c 'if touch /run/pullguard/probe; then exit 1; fi; exec pullguard status'
StandardOutput=journal
UNIT
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -sf /etc/systemd/system/pullguard-boot-test.service \
    "$root/etc/systemd/system/multi-user.target.wants/pullguard-boot-test.service"
  # nspawn mounts /proc and /dev itself.
  umount_root
  timeout 180 systemd-nspawn --quiet --directory="$root" --boot --register=no --keep-unit \
    --private-network > "$work/boot.log" 2>&1 || true
  mount_root
  if grep -q '^end$' "$root/pullguard-boot-result" 2>/dev/null; then
    local line
    while read -r line; do
      case $line in
        "ok - "*) ok "${line#ok - }" ;;
        "FAIL - "*) fail "${line#FAIL - }" ;;
      esac
    done < "$root/pullguard-boot-result"
    if grep -q '^FAIL' "$root/pullguard-boot-result"; then sed 's/^/    /' "$root/pullguard-boot-log"; fi
  else
    fail "systemd: the booted root ran its test to the end"; tail -30 "$work/boot.log" | sed 's/^/    /'
  fi
  rm -f "$t" "$root"/pullguard-boot-* "$root"/etc/systemd/system/pullguard-boot-*.service \
    "$root/etc/systemd/system/multi-user.target.wants/pullguard-boot-test.service"
}

echo "== apt sources of this machine (for $suite)"
host_sources "$work/host.list" "$work/host.sources"

# systemd in the root: the unit can be verified against it, and the package's maintainer
# scripts find deb-systemd-helper as on a real node. The recipe is kept beside the cache,
# which is made again when it changes.
recipe="mmdebstrap $suite minbase +systemd"
if $fresh || [[ ! -s $cache ]] || [[ $(cat "$cache.recipe" 2>/dev/null) != "$recipe" ]]; then
  echo "== making the $suite root (cached as $cache)"
  if ! command -v mmdebstrap >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap
  fi
  mirrors=()
  [[ -s $work/host.list ]] && mirrors+=("$work/host.list")
  [[ -s $work/host.sources ]] && mirrors+=("$work/host.sources")
  # The cached root keeps no apt sources (nor lists): each run writes the machine's own.
  mmdebstrap --variant=minbase --include=systemd --mode=root --format=tar --quiet \
    --customize-hook='rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*' \
    "$suite" "$cache.part" "${mirrors[@]}"
  mv "$cache.part" "$cache"
  echo "$recipe" > "$cache.recipe"
fi

echo "== unpacking the root into $root"
mkdir -p "$root"
tar -C "$root" -xf "$cache"
cp "$work/host.list" "$root/etc/apt/sources.list.d/host.list"
cp "$work/host.sources" "$root/etc/apt/sources.list.d/host.sources"
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
mount_root() {
  mount -t proc proc "$root/proc"; mounted+=("$root/proc")
  mount --bind /dev "$root/dev"; mounted+=("$root/dev")
  mount --bind /dev/pts "$root/dev/pts"; mounted+=("$root/dev/pts")
}
umount_root() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}"; done
  mounted=()
}
mount_root
cp "$deb" "$root/tmp/pullguard.deb"

echo "== dpkg -i $(basename "$deb")"
if ! in_root dpkg -i /tmp/pullguard.deb; then
  echo "== dependencies missing: apt-get -f install"
  in_root apt-get update -q
  in_root env DEBIAN_FRONTEND=noninteractive apt-get -f install -y -q --no-install-recommends
fi
check "the package is installed" \
  test "$(in_root dpkg-query -W -f='${db:Status-Abbrev}' pullguard 2>/dev/null)" = "ii "

version=$(in_root /usr/bin/pullguard --version 2>&1) || true
if [[ $version == "pullguard "* ]]; then ok "/usr/bin/pullguard --version: $version"
else fail "/usr/bin/pullguard --version: ${version:-nothing}"; fi
check "/usr/bin/pullguard-daemon is executable" test -x "$root/usr/bin/pullguard-daemon"
# The hook, where containerd 2.x's bindir verifier looks by default: a file of the package.
hook=opt/containerd/image-verifier/bin/pullguard-hook
check "/$hook is there, a regular file, executable" test -f "$root/$hook" -a ! -L "$root/$hook" -a -x "$root/$hook"
check "/$hook belongs to the package (dpkg deletes it on remove)" \
  test "$(in_root dpkg-query -S "/$hook" 2>/dev/null)" = "pullguard: /$hook"
unit=usr/lib/systemd/system/pullguard.service
check "/$unit is installed" test -f "$root/$unit"
# Enabled by the postinst's deb-systemd-helper, which needs no running systemd: the
# WantedBy= link. (Started it is not: deb-systemd-invoke does nothing where systemd is
# not running, as in this chroot; the boot test below sees it started at boot.)
wants=etc/systemd/system/multi-user.target.wants/pullguard.service
check "pullguard.service is enabled (/$wants -> the packaged unit)" \
  test "$(in_root readlink -f "/$wants" 2>/dev/null)" = "/$unit"
check "nothing was started in the chroot (no /run/pullguard/pullguard.sock)" \
  test ! -e "$root/run/pullguard/pullguard.sock"
check "/etc/pullguard/pullguard.toml is a conffile" \
  in_root sh -c "dpkg-query -W -f='\${Conffiles}' pullguard | grep -q '^ /etc/pullguard/pullguard.toml '"
check "/etc/pullguard/pullguard.toml is present" test -s "$root/etc/pullguard/pullguard.toml"
cp "$root/etc/pullguard/pullguard.toml" "$root/tmp/shipped.toml" 2>/dev/null || : > "$root/tmp/shipped.toml"
for f in containerd-verifier.toml kubelet-image-endpoint.yaml; do
  check "/usr/share/pullguard/$f is present" test -s "$root/usr/share/pullguard/$f"
done

if command -v systemd-analyze >/dev/null; then
  if out=$(systemd-analyze verify --root="$root" "/$unit" 2>&1); then
    ok "systemd-analyze verify (systemd $(systemd-analyze --version | awk 'NR==1 {print $2}')) of the unit in the root"
  else
    fail "systemd-analyze verify of the unit in the root:"; echo "$out" | sed 's/^/    /'
  fi
  if exposure=$(systemd-analyze security --offline=yes --root="$root" pullguard.service 2>/dev/null | tail -1); then
    echo "   systemd-analyze security: ${exposure#→ }"
  fi
else
  echo "skip - systemd-analyze verify: not on this machine"
fi

# containerd's call: three flags, the image's descriptor on stdin.
run_hook() {
  local digest
  digest=sha256:$(printf '%064d' 0)
  printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":100}' "$digest" |
    chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin "/$hook" -name "127.0.0.1:5000/acme/app:1" \
      -digest "$digest" -stdin-media-type application/vnd.oci.descriptor.v1+json
}

if $serve; then
  echo "== pullguard serve, as the unit starts it"
  # What the unit does before ExecStart: its directories with their modes, and its umask;
  # and what it takes away: every capability, and new privileges.
  unit_value() { sed -n "s/^$1=//p" "$root/$unit" | tail -1; }
  exec_start=$(unit_value ExecStart)
  install -d -m "$(unit_value StateDirectoryMode)" "$root/var/lib/pullguard"
  install -d -m "$(unit_value LogsDirectoryMode)" "$root/var/log/pullguard"
  install -d -m "$(unit_value RuntimeDirectoryMode)" "$root/run/pullguard"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin LC_ALL=C.UTF-8 \
    setpriv --no-new-privs --bounding-set=-all --inh-caps=-all --ambient-caps=-all \
    sh -c "umask $(unit_value UMask) && exec $exec_start" > "$work/serve.log" 2>&1 &
  daemon_pid=$!
  sock=$root/run/pullguard/pullguard.sock
  for _ in $(seq 200); do [[ -S $sock ]] && break; kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
  check "the daemon serves /run/pullguard/pullguard.sock with the shipped config" test -S "$sock"
  if [[ -S $sock ]]; then
    check "the socket is 0660" test "$(stat -c %a "$sock")" = 660
    check "the daemon warns that no scope is configured" grep -q 'no \[\[scope\]\] is configured' "$work/serve.log"
    if out=$(in_root pullguard status 2>&1); then
      ok "pullguard status"; echo "$out" | sed 's/^/    /'
    else
      fail "pullguard status"; echo "$out" | sed 's/^/    /'
    fi
    image=127.0.0.1:5000/acme/app@sha256:$(printf '%064d' 0)
    out=$(in_root pullguard verify "$image" 2>&1) && rc=0 || rc=$?
    echo "$out" | sed 's/^/    /'
    check "pullguard verify of an image in no scope: denied (exit 1), as daemon.unmatched says" \
      test "$rc" = 1
    check "the state directory holds the RocksDB state" test -e "$root/var/lib/pullguard/CURRENT"
    # The hook as containerd runs it: it finds the daemon's default socket and passes on
    # the daemon's denial (exit 1, DENY <reason>).
    hook_says=$(run_hook) && rc=0 || rc=$?
    echo "    $hook_says"
    check "the hook, run as containerd runs it, gets the daemon's answer (DENY no_trust_root, exit 1)" \
      test "$rc" = 1 -a "${hook_says%% *}" = DENY -a "$(echo "$hook_says" | cut -d' ' -f2)" = no_trust_root
    check "the denial names daemon.unmatched" grep -q 'daemon.unmatched = "deny"' <<< "$hook_says"
  fi
  kill -TERM "$daemon_pid" 2>/dev/null || true
  wait "$daemon_pid" && rc=0 || rc=$?
  daemon_pid=
  check "SIGTERM: the daemon exits 0" test "$rc" = 0
  check "SIGTERM: the socket is removed" test ! -e "$sock"
  hook_says=$(run_hook) && rc=0 || rc=$?
  echo "    $hook_says"
  check "with the daemon down the hook fails closed (exit 1, DENY)" \
    test "$rc" = 1 -a "${hook_says%% *}" = DENY
  audit=$root/var/log/pullguard/audit.jsonl
  audited() { grep -q '"admitted":false' "$audit" && [[ $(stat -c %a "$audit") == 640 ]]; }
  check "the audit log (0640) has the decision" audited
  echo "   daemon log:"; sed 's/^/    /' "$work/serve.log"
fi

if $serve && [[ $boot != false ]]; then
  if [[ $boot == true ]] && ! command -v systemd-nspawn >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd-container
  fi
  if command -v systemd-nspawn >/dev/null; then
    boot_test
  else
    echo "skip - pullguard.service under systemd: no systemd-nspawn here (--boot installs it)"
  fi
fi

echo "== dpkg -r and dpkg -P"
check "dpkg -r pullguard" in_root dpkg -r pullguard
check "removing the package removed the hook from containerd's bin_dir" test ! -e "$root/$hook" -a ! -L "$root/$hook"
check "the conffile stays after remove" test -f "$root/etc/pullguard/pullguard.toml"
echo "   left of pullguard.service in /etc/systemd after remove:" \
  $(cd "$root" && find etc/systemd -name 'pullguard.service*' -printf '/%p -> %l ' 2>/dev/null)
check "dpkg -P pullguard" in_root dpkg -P pullguard
check "purge removed the conffile, the state and the audit log" \
  test ! -e "$root/etc/pullguard/pullguard.toml" -a ! -e "$root/var/lib/pullguard" -a ! -e "$root/var/log/pullguard"
check "purge removed the unit's enablement (nothing of pullguard.service left in /etc/systemd)" \
  test -z "$(find "$root/etc/systemd" -name 'pullguard.service*' 2>/dev/null)"

# Configure first, then install: a config written before the package, kept by
# --force-confold (dpkg would otherwise ask which one to keep).
echo "== a config written first, then dpkg -i --force-confold"
mkdir -p "$root/etc/pullguard"
{ echo "# written before the package (try-install.sh)"; cat "$root/tmp/shipped.toml"; } > "$root/etc/pullguard/pullguard.toml"
check "dpkg -i --force-confold over a config written first" \
  in_root dpkg -i --force-confold /tmp/pullguard.deb
check "the config written first is kept (the shipped one is pullguard.toml.dpkg-dist)" \
  sh -c "grep -q '^# written before the package' '$root/etc/pullguard/pullguard.toml' && cmp -s '$root/tmp/shipped.toml' '$root/etc/pullguard/pullguard.toml.dpkg-dist'"
check "dpkg -P pullguard (again)" in_root dpkg -P pullguard
check "purge removed both" test ! -e "$root/etc/pullguard/pullguard.toml" -a ! -e "$root/etc/pullguard/pullguard.toml.dpkg-dist"

echo "try-install: $passed passed, $failed failed"
[[ $failed == 0 ]]
