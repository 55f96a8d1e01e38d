#!/usr/bin/env bash
# A "launcher pod" for the libvirt lane: one libvirtd with its own mount
# namespace, socket, state, logs and host UUID, so two of them on one machine
# behave like two nodes (libvirt refuses to migrate to a daemon with its own
# host UUID, and each needs a private /run/libvirt, /var/lib/libvirt, ...).
#
#   test/libvirt/launcher.sh start NAME DIR [VOLUMES]  # returns once the daemon listens
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
# (Absolute paths as given: each $(...) or program run is a fork, and a target pod's start waits for this script.)
abs() { if [[ $1 = /* ]]; then printf '%s' "$1"; else (cd "$1" && pwd); fi; }
[ -d "$dir" ] || mkdir -p "$dir"
[[ $dir = /* ]] || dir="$(abs "$dir")"
pidfile="$dir/launcher.pid"
rundir="$dir/run"
if [ -n "$volumes" ]; then
  mkdir -p "$volumes"/{libvirt-runtime,public/migrationproxy,sockets} "$dir"/{etc,run,lib,cache,log}
  [[ $volumes = /* ]] || volumes="$(abs "$volumes")"
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
  [ -d "$dir/log" ] || mkdir -p "$dir"/{etc,run,lib,cache,log}
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
# makes the orphans' parent (PR_SET_CHILD_SUBREAPER, set by NS_PERL) and that
# reaps each at once while it waits for libvirtd; it goes when libvirtd goes.
REAPER='${1:+taskset -c $1} libvirtd --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirt/libvirtd.pid &
d=$!
trap "kill -TERM $d" TERM INT
while kill -0 "$d" 2>/dev/null; do wait "$d"; done'

# The namespace's set-up in one perl process where the syscall numbers of
# mount and prctl are known (perl-base is on every Debian system): bind
# mounts, then (with a reaper) PR_SET_CHILD_SUBREAPER and the reaper, else
# libvirtd itself. A target pod's start waits for it, and the shell version
# below forks mkdir and seven mounts (~12 ms).
# shellcheck disable=SC2016
NS_PERL='my ($d, $run, $vol, $cpu, $sys_mount, $sys_prctl, $reaper) = @ARGV;
sub bind_mount {
  my ($from, $to) = @_;
  mkdir $to;
  syscall($sys_mount, $from, $to, 0, 4096, 0) == 0 or die "mount --bind $from $to: $!\n"; # MS_BIND
}
bind_mount("$d/etc", "/etc/libvirt");
bind_mount($run, "/run/libvirt");
bind_mount("$d/lib", "/var/lib/libvirt");
bind_mount("$d/cache", "/var/cache/libvirt");
bind_mount("$d/log", "/var/log/libvirt");
if ($vol ne "") {
  bind_mount("$vol/public", "/run/kubevirt");
  mkdir "/run/kubevirt/migrationproxy";
  bind_mount("$vol/sockets", "/run/kubevirt/sockets");
}
$ENV{PATH} = "/usr/sbin:/usr/bin:/sbin:/bin:$ENV{PATH}";
if ($reaper ne "") {
  syscall($sys_prctl, 36, 1) == 0 or die "prctl: $!\n"; # PR_SET_CHILD_SUBREAPER
  exec("bash", "-c", $reaper, "reaper", $cpu) or die "bash: $!\n";
}
my @daemon = ("libvirtd", "--config", "/etc/libvirt/libvirtd.conf", "--pid-file", "/run/libvirt/libvirtd.pid");
unshift @daemon, "taskset", "-c", $cpu if $cpu ne "";
exec(@daemon) or die "libvirtd: $!\n";'

# The syscall numbers (mount, prctl) perl needs for NS_PERL; empty where unknown or without perl.
ns_syscalls() {
  command -v perl >/dev/null 2>&1 || return 0
  case "$HOSTTYPE" in
    x86_64) echo "165 157" ;;
    aarch64) echo "40 167" ;;
  esac
}

start() {
  if [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; then
    say "already running (pid $(cat "$pidfile"))"; echo "$uri"; return 0
  fi
  command -v libvirtd >/dev/null 2>&1 || [ -x /usr/sbin/libvirtd ] || { say "libvirtd not installed (run setup.sh)"; return 3; }
  write_config
  rm -f "$sock" "$rundir/libvirtd.pid"
  local sys reaper=""; sys="$(ns_syscalls)"
  if [ "${FERRY_LAUNCHER_REAPER:-1}" = 1 ]; then
    if [ -n "$sys" ]; then reaper="$REAPER"; else say "no perl or unknown syscall numbers on $HOSTTYPE: libvirtd runs without a reaping parent"; fi
  fi
  if [ -n "$volumes" ]; then echo "$volumes" >"$dir/launcher.volumes"; else rm -f "$dir/launcher.volumes"; fi
  # The mount point for the pod's /run/kubevirt must exist on the host.
  [ -z "$volumes" ] || [ -d /run/kubevirt ] || mkdir -p /run/kubevirt
  if [ -n "$sys" ]; then
    # unshare and perl exec into libvirtd (or the reaper), so $! is the daemon's (or the reaper's) pid.
    # shellcheck disable=SC2086
    unshare --mount --propagation private -- perl -e "$NS_PERL" "$dir" "$rundir" "$volumes" "$(daemon_cpu)" $sys "$reaper" \
      </dev/null >"$dir/launcher.out" 2>&1 &
  else
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
    exec ${4:+taskset -c $4} libvirtd --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirt/libvirtd.pid
  ' launcher "$dir" "$rundir" "$volumes" "$(daemon_cpu)" </dev/null >"$dir/launcher.out" 2>&1 &
  fi
  local child=$! pid=""
  # The daemon's pid file (written before it listens; same pid namespace, so
  # the host's pid) names the daemon whether or not a reaper is its parent.
  # The socket is polled every 2 ms with a builtin: a migration target's pod
  # start waits for this loop, and `sleep` or `virsh` forks cost 10-14 ms each
  # (they made half of the 55 ms this took). A listening socket is enough:
  # a connection made before the daemon accepts waits in its backlog.
  local pidf="$rundir/libvirtd.pid" nap
  exec {nap}<> <(:) # a pipe we hold both ends of: read -t on it is a builtin sleep
  local deadline=$((SECONDS + ${FERRY_LAUNCHER_TIMEOUT:-30}))
  while [ $SECONDS -lt $deadline ]; do
    # (The pid file has no newline: read fails at its end but sets pid.)
    if [ -S "$sock" ] && [ -s "$pidf" ] && { read -r pid <"$pidf" || [ -n "$pid" ]; } && alive "$pid"; then
      echo "$pid" >"$pidfile"
      # A pod's socket path can exceed the 108 bytes a unix socket address
      # holds: reach it through the daemon's own root, as virt-handler does.
      [ -z "$volumes" ] || uri="qemu+unix:///system?socket=/proc/$pid/root/run/libvirt/libvirt-sock"
      say "ready (pid $pid)"; echo "$uri"; return 0
    fi
    if ! alive "$child"; then
      say "libvirtd exited during start; output:"; tail -n 20 "$dir/launcher.out" >&2
      tail -n 20 "$dir/log/libvirtd.log" >&2 2>/dev/null
      return 1
    fi
    read -r -t 0.002 -u "$nap" _
  done
  [ -n "$pid" ] || pid="$child"
  echo "$pid" >"$pidfile"
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
