#!/usr/bin/env bash
# Flat at scale (issue 17): a private berthd (and dockerd 20.10, up to DOCKERD_MAX running
# containers, where installed) with 0, 100 and 1,000 running containers (`--network none`,
# busybox `sleep`). At each count:
#   - `run --rm IMG true` and `ps` (medians of ROUNDS), `inspect` of one container;
#   - berthd's RSS and open descriptors, the monitors' total RSS and PSS per monitor (shared
#     pages, the binary and libc, counted once);
#   - `stats --no-stream` of all;
#   - a restart of berthd (SIGTERM, start again): time until the API answers (berthd
#     reconciles every container before it serves, so this is also the full reconcile);
# and at the end `rm -f` of all.
# Goals: run --rm with 1,000 running within 10% of none; berthd under 20 MB with 1,000; a
# monitor at most 0.5 MB; restart with 1,000 answering within 1 s.
#
# Usage (as root, from the repository root): bench/scale.sh   (COUNTS="0 100 1000", ROUNDS=7,
# DOCKERD_MAX=100)
set -euo pipefail
COUNTS=${COUNTS:-0 100 1000}
ROUNDS=${ROUNDS:-7}
DOCKERD_MAX=${DOCKERD_MAX:-100}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
DOCKER=${DOCKER_CLI:-$(command -v docker || echo /usr/local/bin/docker)}
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
have_dockerd=0
[ -x /usr/sbin/dockerd ] && [ "$DOCKERD_MAX" -gt 0 ] && have_dockerd=1
cargo build --release -q -p berth-daemon -p berth-monitor -p berth-init -p berth-cli
bin=$repo/target/release
# Short: the monitor sockets under the exec root must fit in 108 bytes.
tmp=$(mktemp -d /run/bscale.XXXXXX)
pids=()
berthd_pid=
cleanup() {
  remove_containers "$tmp/berth.sock" "$tmp/docker.sock"
  stop_pids "${pids[@]}" ${berthd_pid:+"$berthd_pid"}
  umount_under "$tmp"
  rm -rf "$tmp"
  ip link del bscale0 2>/dev/null || true
  nft delete table ip berth_scale 2>/dev/null || true
  nft delete table ip6 berth_scale 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_berthd() {
  "$bin/berthd" -H "unix://$tmp/berth.sock" --data-root "$tmp/berth-data" --exec-root "$tmp/b" \
    --bridge bscale0 --nft-table berth_scale --config-file /nonexistent -l warn --cri=false \
    >>"$tmp/berthd.log" 2>&1 &
  berthd_pid=$!
}
start_berthd
wait_for "$tmp/berth.sock"
if [ "$have_dockerd" = 1 ]; then
  /usr/sbin/dockerd --data-root "$tmp/docker-data" --exec-root "$tmp/d" -H "unix://$tmp/docker.sock" \
    --pidfile "$tmp/docker.pid" --bridge=none --iptables=false --ip-masq=false \
    --storage-driver overlay2 >"$tmp/dockerd.log" 2>&1 &
  pids+=($!)
  dockerd_pid=$!
  wait_for "$tmp/docker.sock"
fi
B() { DOCKER_HOST=unix://$tmp/berth.sock "$DOCKER" "$@"; }
D() { DOCKER_HOST=unix://$tmp/docker.sock "$DOCKER" "$@"; }
busybox_tar "$tmp"
B import "$tmp/busybox.tar" bb:scale >/dev/null
[ "$have_dockerd" = 1 ] && D import "$tmp/busybox.tar" bb:scale >/dev/null

rounds() { "$@" >/dev/null; for _ in $(seq "$ROUNDS"); do ms "$@"; done | median; }
rss_kb() { awk '/^VmRSS:/ { v = $2 } END { print v + 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# Proportional set size: shared pages (the binary, libc) counted once across the processes.
pss_kb() { awk '/^Pss:/ { v = $2 } END { print v + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# monitors PATTERN: "TOTAL_RSS_KB PSS_KB_PER_PROCESS" of the processes matching PATTERN.
monitors() {
  local rss=0 pss=0 n=0 p
  for p in $(pgrep -f "$1" || true); do
    rss=$((rss + $(rss_kb "$p"))); pss=$((pss + $(pss_kb "$p"))); n=$((n + 1))
  done
  echo "$rss $([ "$n" -gt 0 ] && echo $((pss / n)) || echo 0)"
}
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# grow SIDE N: runs `sleep` containers until N run on SIDE (B or D).
grow() {
  local have
  have=$("$1" ps -q | wc -l)
  [ "$have" -ge "$2" ] && return 0
  seq $(($2 - have)) | xargs -P 8 -I{} env DOCKER_HOST="unix://$tmp/$([ "$1" = B ] && echo berth || echo docker).sock" \
    "$DOCKER" run -d --network none bb:scale sleep 1000000 >/dev/null
}

echo "berthd $("$bin/berthd" --version | awk '{print $2}')$([ "$have_dockerd" = 1 ] && echo " vs dockerd $(/usr/sbin/dockerd --version | awk '{print $3}' | tr -d ,) (up to $DOCKERD_MAX)")"
echo "$(nproc) cpus, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), $ROUNDS rounds"
echo
printf '%-6s %-7s %10s %9s %9s %10s %11s %6s %14s %12s %12s %10s\n' count daemon "run --rm" ps "ps API" inspect "daemon RSS" fds "monitors RSS" "PSS/monitor" "stats all" restart
for n in $COUNTS; do
  grow B "$n"
  one=$(B ps -q | head -1)
  run=$(rounds B run --rm --network none bb:scale true)
  ps=$(rounds B ps)
  # berthd's own part of `ps`: the list request alone, without the CLI's start and table.
  ps_api=$(rounds curl -s --unix-socket "$tmp/berth.sock" http://b/containers/json)
  insp=-
  [ -n "$one" ] && insp=$(rounds B inspect "$one")
  # What an idle berthd holds: it trims its heap after 5 s without requests.
  sleep 6
  rss=$(rss_kb "$berthd_pid")
  fd=$(fds "$berthd_pid")
  read -r mon pss < <(monitors "^$bin/berth-monitor|^$tmp/b/bin/berth-monitor")
  stats=$(ms B stats --no-stream)
  # Restart: SIGTERM, then a new berthd; the time until it answers.
  kill "$berthd_pid"; wait "$berthd_pid" 2>/dev/null || true
  t0=$EPOCHREALTIME
  start_berthd
  wait_for "$tmp/berth.sock"
  t1=$EPOCHREALTIME
  restart=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
  printf '%-6s %-7s %8.1f ms %6.1f ms %6.1f ms %7s ms %8s MB %6s %11s MB %9s kB %9.0f ms %7s ms\n' "$n" berthd "$run" "$ps" "$ps_api" "$insp" "$(mb "$rss")" "$fd" "$(mb "$mon")" "$pss" "$stats" "$restart"
  if [ "$have_dockerd" = 1 ] && [ "$n" -le "$DOCKERD_MAX" ]; then
    grow D "$n"
    one=$(D ps -q | head -1)
    run=$(rounds D run --rm bb:scale true)
    ps=$(rounds D ps)
    ps_api=$(rounds curl -s --unix-socket "$tmp/docker.sock" http://d/containers/json)
    insp=-
    [ -n "$one" ] && insp=$(rounds D inspect "$one")
    sleep 6
    rss=$(rss_kb "$dockerd_pid")
    fd=$(fds "$dockerd_pid")
    read -r mon pss < <(monitors containerd-shim)
    stats=$(ms D stats --no-stream)
    printf '%-6s %-7s %8.1f ms %6.1f ms %6.1f ms %7s ms %8s MB %6s %11s MB %9s kB %9.0f ms %7s\n' "$n" dockerd "$run" "$ps" "$ps_api" "$insp" "$(mb "$rss")" "$fd" "$(mb "$mon")" "$pss" "$stats" -
  fi
done
t0=$EPOCHREALTIME
remove_containers "$tmp/berth.sock"
echo
echo "rm -f of all berthd's: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms"
