#!/usr/bin/env bash
# A "launcher pod" for the libvirt lane: one libvirtd with its own mount
# namespace, socket, state, logs and host UUID, so two of them on one machine
# behave like two nodes (libvirt refuses to migrate to a daemon with its own
# host UUID, and each needs a private /run/libvirt, /var/lib/libvirt, ...).
#
#   test/libvirt/launcher.sh start NAME DIR [VOLUMES]  # returns once the socket answers
#   test/libvirt/launcher.sh stop  NAME DIR            # daemon and every QEMU it started
#
# With VOLUMES (a launcher pod's `<pods>/<podUID>/volumes/kubernetes.io~empty-dir`)
# the daemon is laid out as KubeVirt's virt-launcher is: its runtime dir (and
# socket) is the pod's `libvirt-runtime` emptyDir, mounted at /run/libvirt;
# `public` is mounted at /run/kubevirt (with migrationproxy/ for the migration
# sockets) and `sockets` at /run/kubevirt/sockets. The socket is then
# VOLUMES/libvirt-runtime/libvirt-sock on the host.
#
# DIR holds etc/ run/ lib/ cache/ log/; the client URI is printed by start:
#   qemu+unix:///system?socket=DIR/run/libvirt-sock
# DIR must not lie under /run/libvirt, /var/lib/libvirt, /var/cache/libvirt,
# /var/log/libvirt or /etc/libvirt (those are mounted over inside).
# FERRY_LIBVIRTD_LOG_FILTERS / FERRY_LIBVIRTD_LOG_OUTPUTS: libvirtd's log_filters
# and log_outputs (default: warnings and errors to DIR/log/libvirtd.log), e.g.
# "1:qemu.qemu_migration" and "1:file:/var/log/libvirt/libvirtd.log" to trace a migration's steps.
# Files: DIR/launcher.pid (libvirtd's pid as seen from the host),
#        DIR/launcher.out (daemon stdout/stderr), DIR/log/libvirtd.log.
set -uo pipefail

cmd="${1:-}"; name="${2:-}"; dir="${3:-}"; volumes="${4:-}"
[ -n "$cmd" ] && [ -n "$name" ] && [ -n "$dir" ] || { echo "usage: launcher.sh start|stop NAME DIR [VOLUMES]" >&2; exit 2; }
mkdir -p "$dir" && dir="$(cd "$dir" && pwd)"
pidfile="$dir/launcher.pid"
rundir="$dir/run"
if [ -n "$volumes" ]; then
  mkdir -p "$volumes"/{libvirt-runtime,public/migrationproxy,sockets} && volumes="$(cd "$volumes" && pwd)"
  rundir="$volumes/libvirt-runtime"
elif [ -f "$dir/launcher.volumes" ]; then
  rundir="$(cat "$dir/launcher.volumes")/libvirt-runtime"
fi
sock="$rundir/libvirt-sock"
uri="qemu+unix:///system?socket=$sock"
say() { printf '[launcher %s] %s\n' "$name" "$*" >&2; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# `cat` with bash's builtins: a migration target's pod start waits for this
# script, and each program it forks costs a few ms.
write_lines() {
  local l
  while IFS= read -r l; do printf '%s\n' "$l"; done >"$1"
}

write_config() {
  mkdir -p "$dir"/{etc,run,lib,cache,log}
  local uuid; read -r uuid </proc/sys/kernel/random/uuid
  write_lines "$dir/etc/libvirtd.conf" <<EOF
# written by launcher.sh for launcher $name
unix_sock_dir = "/run/libvirt"
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
host_uuid = "$uuid"
log_outputs = "${FERRY_LIBVIRTD_LOG_OUTPUTS:-3:file:/var/log/libvirt/libvirtd.log}"
log_filters = "${FERRY_LIBVIRTD_LOG_FILTERS:-}"
EOF
  # QEMU runs as root without a security driver or virtlogd: nothing else of
  # the host's libvirt setup is needed. No migration_address here: libvirt
  # rejects 127.0.0.1 as "the local machine"; migrations pass --migrateuri.
  # No cgroups: all launchers share the host's cgroup tree, where a domain's
  # group is named machine/qemu-<id>-<name>, so source and target of a
  # migration can land in the same group and the source's cleanup retries
  # the busy group for a second (a launcher pod has a cgroup of its own).
  write_lines "$dir/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
stdio_handler = "file"
security_driver = "none"
cgroup_controllers = [ ]
EOF
  : >"$dir/etc/libvirt.conf"
}

# Every daemon runs on one CPU (the first this script may use). libvirt keeps
# the host's CPUID in its QEMU capabilities cache, and leaf 0x1f carries the
# x2APIC id of the CPU that asked: a fresh daemon that happens to run on
# another CPU than the one that wrote the cache finds it stale and probes QEMU
# again (3-4 s here, inside a migration's prepare for a new target launcher).
# QEMU is not held to it: libvirt gives a domain's QEMU every host CPU when
# the domain pins nothing.
daemon_cpu() {
  command -v taskset >/dev/null 2>&1 || return 0 # util-linux's; without it the daemon may run anywhere
  local k v
  while read -r k v; do
    [ "$k" = Cpus_allowed_list: ] || continue
    v="${v%%,*}"; echo "${v%%-*}"; return
  done </proc/self/status
}

# libvirtd gets a parent that reaps, as a pod has one (FERRY_LAUNCHER_REAPER=0:
# none). libvirt daemonizes QEMU, so an exited QEMU is reaped by whoever adopted
# the orphan, and libvirt waits (polling every 200 ms) until the process is
# gone: under an init that reaps late (this sandbox's reaps every ~2 s) each
# stopped QEMU, a migrated-away source or a capabilities probe, cost 1.4-2 s
# (the libvirt lane ran twice as long). The reaper is a bash that the kernel
# makes the orphans' parent (PR_SET_CHILD_SUBREAPER, set through perl's
# syscall) and that reaps each at once while it waits for libvirtd; it goes
# when libvirtd goes.
REAPER='${1:+taskset -c $1} libvirtd --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirt/libvirtd.pid &
d=$!
trap "kill -TERM $d" TERM INT
while kill -0 "$d" 2>/dev/null; do wait "$d"; done'

# prctl's syscall number when a reaper is wanted (and perl can make one); empty otherwise.
reaper_prctl() {
  [ "${FERRY_LAUNCHER_REAPER:-1}" = 1 ] || return 0
  command -v perl >/dev/null 2>&1 || { say "no perl: libvirtd runs without a reaping parent"; return 0; }
  case "$HOSTTYPE" in
    x86_64) echo 157 ;;
    aarch64) echo 167 ;;
    *) say "FERRY_LAUNCHER_REAPER: prctl's syscall number on $HOSTTYPE is not known; no reaper" ;;
  esac
}

start() {
  if [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; then
    say "already running (pid $(cat "$pidfile"))"; echo "$uri"; return 0
  fi
  command -v libvirtd >/dev/null 2>&1 || [ -x /usr/sbin/libvirtd ] || { say "libvirtd not installed (run setup.sh)"; return 3; }
  write_config
  rm -f "$sock" "$rundir/libvirtd.pid"
  local prctl; prctl="$(reaper_prctl)"
  if [ -n "$volumes" ]; then echo "$volumes" >"$dir/launcher.volumes"; else rm -f "$dir/launcher.volumes"; fi
  # The mount point for the pod's /run/kubevirt must exist on the host.
  [ -z "$volumes" ] || mkdir -p /run/kubevirt
  # unshare and bash exec into libvirtd, so $! is the daemon's own pid.
  unshare --mount --propagation private -- bash -c '
    set -e
    d="$1"; run="$2"; vol="$3"
    mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt
    mount --bind "$d/etc" /etc/libvirt
    mount --bind "$run" /run/libvirt
    mount --bind "$d/lib" /var/lib/libvirt
    mount --bind "$d/cache" /var/cache/libvirt
    mount --bind "$d/log" /var/log/libvirt
    if [ -n "$vol" ]; then
      mount --bind "$vol/public" /run/kubevirt
      mkdir -p /run/kubevirt/sockets /run/kubevirt/migrationproxy
      mount --bind "$vol/sockets" /run/kubevirt/sockets
    fi
    PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
    # With a reaper (see REAPER), prctl marks this process a subreaper and it runs the reaper script.
    [ -z "$5" ] || exec perl -e "syscall($5, 36, 1) == 0 or die qq(prctl: \$!\n); exec @ARGV or die qq(\$!\n)" -- bash -c "$6" reaper "$4"
    exec ${4:+taskset -c $4} libvirtd --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirt/libvirtd.pid
  ' launcher "$dir" "$rundir" "$volumes" "$(daemon_cpu)" "$prctl" "$REAPER" </dev/null >"$dir/launcher.out" 2>&1 &
  local pid=$!
  if [ -n "$prctl" ]; then
    # $! is the reaper (first it mounts, forking mount and mkdir); the daemon is
    # its child named libvirtd, and launcher.pid names the daemon.
    local i c comm d="" kids=()
    for ((i = 0; i < 300; i++)); do
      read -ra kids <"/proc/$pid/task/$pid/children" 2>/dev/null
      for c in "${kids[@]}"; do
        read -r comm <"/proc/$c/comm" 2>/dev/null && [ "$comm" = libvirtd ] && { d="$c"; break; }
      done
      [ -n "$d" ] && break
      alive "$pid" || break
      sleep 0.01
    done
    [ -n "$d" ] && pid="$d"
  fi
  echo "$pid" >"$pidfile"
  local deadline=$((SECONDS + ${FERRY_LAUNCHER_TIMEOUT:-30}))
  while [ $SECONDS -lt $deadline ]; do
    if ! alive "$pid"; then
      say "libvirtd exited during start; output:"; tail -n 20 "$dir/launcher.out" >&2
      tail -n 20 "$dir/log/libvirtd.log" >&2 2>/dev/null
      rm -f "$pidfile"; return 1
    fi
    # A pod's socket path can exceed the 108 bytes a unix socket address
    # holds: reach it through the daemon's own root, as virt-handler does.
    [ -z "$volumes" ] || uri="qemu+unix:///system?socket=/proc/$pid/root/run/libvirt/libvirt-sock"
    if [ -S "$sock" ] && virsh -q -c "$uri" uri >/dev/null 2>&1; then
      say "ready (pid $pid)"; echo "$uri"; return 0
    fi
    # A pod start waits for this loop (a migration target's daemon is started on the migration's path).
    sleep 0.01
  done
  say "socket $sock did not answer within ${FERRY_LAUNCHER_TIMEOUT:-30}s"
  stop; return 1
}

# Every process in libvirtd's mount namespace other than libvirtd itself is a
# QEMU (or helper) it started.
namespace_members() {
  local ns="$1" self="$2" p
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [ "$p" = "$self" ] && continue
    [ "$(readlink "/proc/$p/ns/mnt" 2>/dev/null)" = "$ns" ] && echo "$p"
  done
}

# QEMU pids from the daemon's own pid files, for when the daemon is gone;
# checked against the executable so a recycled pid is never hit.
qemu_from_pidfiles() {
  local f p
  for f in "$rundir"/qemu/*.pid; do
    [ -f "$f" ] || continue
    p="$(tr -dc 0-9 <"$f")"
    alive "$p" && readlink "/proc/$p/exe" 2>/dev/null | grep -q qemu-system && echo "$p"
  done
}

kill_all() {
  local sig="$1"; shift
  local p
  for p in "$@"; do kill "-$sig" "$p" 2>/dev/null; done
}

wait_gone() {
  local deadline=$((SECONDS + $1)); shift
  local p left
  while [ $SECONDS -lt $deadline ]; do
    left=0
    for p in "$@"; do alive "$p" && left=1; done
    [ $left = 0 ] && return 0
    sleep 0.1
  done
  return 1
}

stop() {
  local pid="" ns="" members=()
  [ -f "$pidfile" ] && pid="$(cat "$pidfile")"
  if alive "$pid"; then
    ns="$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)"
    # shellcheck disable=SC2207
    [ -n "$ns" ] && members=($(namespace_members "$ns" "$pid"))
    kill -TERM "$pid" 2>/dev/null
    wait_gone 10 "$pid" || { say "libvirtd $pid ignored SIGTERM; killing"; kill -KILL "$pid" 2>/dev/null; wait_gone 5 "$pid"; }
  fi
  # shellcheck disable=SC2207
  members+=($(qemu_from_pidfiles))
  if [ ${#members[@]} -gt 0 ]; then
    kill_all TERM "${members[@]}"
    wait_gone 5 "${members[@]}" || { kill_all KILL "${members[@]}"; wait_gone 5 "${members[@]}"; }
  fi
  local p left=()
  for p in "$pid" "${members[@]}"; do alive "$p" && left+=("$p"); done
  rm -f "$pidfile" "$sock" "$dir/launcher.volumes"
  if [ ${#left[@]} -gt 0 ]; then say "still running after stop: ${left[*]}"; return 1; fi
  say "stopped"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: launcher.sh start|stop NAME DIR [VOLUMES]" >&2; exit 2 ;;
esac
