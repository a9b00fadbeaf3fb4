# shellcheck shell=bash
# Helpers shared by engine.sh and network.sh (sourced, not run). The caller sets DOCKER (the
# docker CLI) before using wait_for or remove_containers.

# median: the median of the numbers on stdin, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ms COMMAND...: milliseconds of one run (stdout discarded).
ms() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$@" >/dev/null
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'
}

# ratio A B: A / B with two decimals, "-" if B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# wait_for SOCKET: until the daemon at SOCKET answers `docker version` (30 s at most).
wait_for() {
  for i in $(seq 300); do
    DOCKER_HOST=unix://$1 "$DOCKER" version >/dev/null 2>&1 && return 0
    [ "$i" = 300 ] && { echo "daemon at $1 did not start" >&2; return 1; }
    sleep 0.1
  done
}

# remove_containers SOCKET...: `rm -f` of every container of the daemons at these sockets (the
# ones that exist); errors ignored.
remove_containers() {
  local s ids
  for s in "$@"; do
    [ -S "$s" ] || continue
    ids=$(DOCKER_HOST=unix://$s "$DOCKER" ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086
    if [ -n "$ids" ]; then DOCKER_HOST=unix://$s "$DOCKER" rm -f $ids >/dev/null 2>&1 || true; fi
  done
}

# stop_pids PID...: SIGTERM to each, up to 10 s each to exit, then SIGKILL.
stop_pids() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
}

# umount_under DIR: lazy unmount of everything mounted under DIR/, deepest first.
umount_under() {
  awk -v t="$1/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}

# busybox_tar DIR: the busybox fixture's root filesystem (scripts/busybox-bundle) as one tar,
# DIR/busybox.tar (the bundle is left in DIR/bundle). Run from the repository root.
busybox_tar() {
  scripts/busybox-bundle "$1/bundle" >/dev/null
  tar -C "$1/bundle/rootfs" -cf "$1/busybox.tar" .
}
