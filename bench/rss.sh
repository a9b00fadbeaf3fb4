#!/usr/bin/env bash
# berthd's memory over many container lifetimes: RSS (and the number of memory mappings) of a
# fresh berthd after a warm-up, then after N `run --rm` cycles through the berth CLI, each
# measured once berthd has been idle long enough to give memory back (its idle trim, 5 s).
# Nothing the daemon keeps per container may outlive the container: the two figures should be
# the same (issue 12: after 10,000 cycles, back to where it started).
#
# Usage (as root, from the repository root): bench/rss.sh    (N=cycles, default 10000)
set -euo pipefail
N=${N:-10000}
WARMUP=${WARMUP:-200}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
DOCKER=${DOCKER_CLI:-$(command -v docker || echo /usr/local/bin/docker)}
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
cargo build --release -q -p berth-daemon -p berth-monitor -p berth-runtime -p berth-cli
bin=$repo/target/release

tmp=$(mktemp -d /run/berth-rss.XXXXXX)
pids=()
cleanup() {
  remove_containers "$tmp/berth.sock"
  stop_pids "${pids[@]}"
  umount_under "$tmp"
  rm -rf "$tmp"
  ip link del brss0 2>/dev/null || true
  nft delete table ip berth_rss 2>/dev/null || true
  nft delete table ip6 berth_rss 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

busybox_tar "$tmp"
"$bin/berthd" -H "unix://$tmp/berth.sock" --data-root "$tmp/data" --exec-root "$tmp/x" \
  --bridge brss0 --nft-table berth_rss --config-file /nonexistent -l warn >"$tmp/berthd.log" 2>&1 &
pids+=($!)
berthd_pid=$!
wait_for "$tmp/berth.sock"
export DOCKER_HOST="unix://$tmp/berth.sock"
"$bin/berth" import "$tmp/busybox.tar" busybox >/dev/null

cycles() {
  local i
  for ((i = 0; i < $1; i++)); do
    "$bin/berth" run --rm --network none busybox true >/dev/null
  done
}
# RSS in kB and mappings, once berthd has been idle past its trim.
measure() {
  sleep 7
  echo "$(awk '/^VmRSS/ {print $2}' "/proc/$berthd_pid/status") kB RSS, $(wc -l <"/proc/$berthd_pid/maps") maps"
}

cycles "$WARMUP"
before=$(measure)
start=$(date +%s)
cycles "$N"
took=$(( $(date +%s) - start ))
after=$(measure)
echo "berthd after $WARMUP warm-up cycles: $before"
echo "berthd after $N more run --rm cycles ($took s): $after"
