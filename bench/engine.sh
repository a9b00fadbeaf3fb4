#!/usr/bin/env bash
# berthd against dockerd 20.10 (Debian's docker.io, with its containerd), on the same busybox
# image and with the same docker CLI as client:
#   - `docker run --rm IMG true`, sequential rounds (median), and bare `berth-runtime run` of the
#     same program for scale;
#   - 20 parallel `docker run -d IMG sleep 60` (wall time for all 20);
#   - idle RSS of berthd against dockerd + containerd;
#   - RSS of one berth-monitor against one containerd-shim, with a running container each.
# Containers get loopback only on both sides: berth's with `--network none`, docker's with its
# default network under --bridge=none (206 ms here, its fastest; an explicit `--network none`
# costs dockerd 337 ms). What a bridge network adds is the network benchmark's.
# Targets (issue 4): run --rm <= 0.1 x docker and <= 2 x bare berth-runtime run; 20 parallel
# <= 0.15 x docker; berthd under 15 MB; a monitor under 1 MB.
#
# Usage (as root, from the repository root): bench/engine.sh    (ROUNDS=N, default 20;
# BERTH_BIN=DIR to time the binaries in DIR, e.g. copies of an older build, instead of building)
set -euo pipefail
ROUNDS=${ROUNDS:-20}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
DOCKER=${DOCKER_CLI:-$(command -v docker || echo /usr/local/bin/docker)}
[ -x "$DOCKER" ] || { echo "no docker CLI" >&2; exit 2; }
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
have_dockerd=1
if [ ! -x /usr/sbin/dockerd ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null \
    || have_dockerd=0
fi
if [ -n "${BERTH_BIN:-}" ]; then
  bin=$(cd "$BERTH_BIN" && pwd)
else
  cargo build --release -q -p berth-daemon -p berth-monitor -p berth-runtime -p berth-cli
  bin=$repo/target/release
fi

tmp=$(mktemp -d /run/berth-bench.XXXXXX)
pids=()
cleanup() {
  remove_containers "$tmp/berth.sock" "$tmp/docker.sock"
  stop_pids "${pids[@]}"
  umount_under "$tmp"
  rm -rf "$tmp"
  # berthd's default bridge and firewall table of this run.
  ip link del bbench0 2>/dev/null || true
  nft delete table ip berth_bench 2>/dev/null || true
  nft delete table ip6 berth_bench 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The image: the busybox fixture's layout, as one tar.
busybox_tar "$tmp"

"$bin/berthd" -H "unix://$tmp/berth.sock" --data-root "$tmp/berth-data" --exec-root "$tmp/b" \
  --bridge bbench0 --nft-table berth_bench --config-file /nonexistent -l warn >"$tmp/berthd.log" 2>&1 &
pids+=($!)
berthd_pid=$!
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
B import "$tmp/busybox.tar" bb:bench >/dev/null
[ "$have_dockerd" = 1 ] && D import "$tmp/busybox.tar" bb:bench >/dev/null

rounds() { # COMMAND...: median ms over ROUNDS runs, after one warm-up
  "$@" >/dev/null
  for _ in $(seq "$ROUNDS"); do ms "$@"; done | median
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "berthd $("$bin/berthd" --version | awk '{print $2}') vs dockerd $([ "$have_dockerd" = 1 ] && /usr/sbin/dockerd --version | awk '{print $3}' | tr -d ,)"
echo "$(nproc) cpus, kernel $(uname -r), $ROUNDS rounds, client $("$DOCKER" --version)"
echo

# run --rm
b_run=$(rounds B run --rm --network none bb:bench true)
runtime_dir=$tmp/rt
cp -a "$tmp/bundle" "$runtime_dir"
n=0
bare() { n=$((n + 1)); "$bin/berth-runtime" --root "$tmp/rt-state" run --bundle "$runtime_dir" "bench-$n"; }
python3 - "$runtime_dir/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["process"]["args"] = ["true"]; c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
r_run=$(rounds bare)
printf '%-34s berth %8.1f ms' "docker run --rm IMG true" "$b_run"
if [ "$have_dockerd" = 1 ]; then
  d_run=$(rounds D run --rm bb:bench true)
  printf '   docker %8.1f ms   ratio %s (target <= 0.10)' "$d_run" "$(ratio "$b_run" "$d_run")"
fi
echo
c_run=$(rounds "$bin/berth" -H "unix://$tmp/berth.sock" run --rm --network none bb:bench true)
printf '%-34s berth %8.1f ms' "berth run --rm IMG true (berth CLI)" "$c_run"
[ "$have_dockerd" = 1 ] && printf '   ratio to docker %s' "$(ratio "$c_run" "$d_run")"
echo
printf '%-34s %8.1f ms   berth/bare %s, berth CLI/bare %s (target <= 2)\n' "bare berth-runtime run true" "$r_run" "$(ratio "$b_run" "$r_run")" "$(ratio "$c_run" "$r_run")"
# The docker CLI's own CPU time (user + sys of the client process) per `run --rm`: a floor that
# no daemon removes.
cli_cpu() {
  local TIMEFORMAT='%U %S'
  { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{ printf "%.1f\n", ($1 + $2) * 1000 }'
}
d_cli=$(for _ in $(seq "$ROUNDS"); do cli_cpu B run --rm --network none bb:bench true; done | median)
printf '%-34s %8.1f ms   (the client alone: %s x docker run --rm)\n' "docker CLI's own CPU per run --rm" "$d_cli" "$([ "$have_dockerd" = 1 ] && ratio "$d_cli" "$d_run" || echo -)"

# 20 parallel run -d
par() { # B|D
  local t0 t1
  t0=$EPOCHREALTIME
  local net=()
  [ "$1" = berth ] && net=(--network none)
  seq 20 | xargs -P 20 -I{} env DOCKER_HOST="unix://$tmp/$1.sock" "$DOCKER" run -d "${net[@]}" bb:bench sleep 60 >/dev/null
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'
}
# Median of 3 rounds, the containers removed and the kernel given time to settle in between
# (dying namespaces are cleaned up in the background).
par3() { # B|D
  for _ in 1 2 3; do
    par "$1"
    local ids
    ids=$(DOCKER_HOST="unix://$tmp/$1.sock" "$DOCKER" ps -aq)
    # shellcheck disable=SC2086
    [ -n "$ids" ] && DOCKER_HOST="unix://$tmp/$1.sock" "$DOCKER" rm -f $ids >/dev/null
    sleep 3
  done | median
}
sleep 3
b_par=$(par3 berth)
par berth >/dev/null
# monitor RSS while the 20 run, in their steady state (a monitor trims after a second idle)
sleep 2
mon_rss=$(for p in $(pgrep -f "berth-monitor.*$tmp/b/"); do rss_kb "$p"; done | median)
printf '%-34s berth %8.1f ms' "20 parallel run -d IMG sleep 60" "$b_par"
if [ "$have_dockerd" = 1 ]; then
  d_par=$(par3 docker)
  par docker >/dev/null
  sleep 2
  shim_rss=$(for p in $(pgrep -f "containerd-shim.*$tmp/d"); do rss_kb "$p"; done | median)
  [ -z "$shim_rss" ] && shim_rss=$(for p in $(pgrep -f containerd-shim); do rss_kb "$p"; done | median)
  printf '   docker %8.1f ms   ratio %s (target <= 0.15)' "$d_par" "$(ratio "$b_par" "$d_par")"
fi
echo
printf '%-34s berth-monitor %6.2f MB' "RSS per container (median)" "$(awk -v k="${mon_rss:-0}" 'BEGIN{print k/1024}')"
[ "$have_dockerd" = 1 ] && printf '   containerd-shim %6.2f MB' "$(awk -v k="${shim_rss:-0}" 'BEGIN{print k/1024}')"
echo "   (target < 1 MB)"

# idle daemons: remove the containers, let them settle
ids=$(B ps -aq); [ -n "$ids" ] && B rm -f $ids >/dev/null
if [ "$have_dockerd" = 1 ]; then ids=$(D ps -aq); [ -n "$ids" ] && D rm -f $ids >/dev/null; fi
sleep 6
b_rss=$(rss_kb "$berthd_pid")
printf '%-34s berthd %6.2f MB' "idle daemon RSS" "$(awk -v k="$b_rss" 'BEGIN{print k/1024}')"
if [ "$have_dockerd" = 1 ]; then
  c_pid=$(pgrep -f "containerd.*$tmp/d" | head -1 || true)
  d_rss=$(( $(rss_kb "$dockerd_pid") + $( [ -n "$c_pid" ] && rss_kb "$c_pid" || echo 0) ))
  printf '   dockerd + containerd %6.2f MB' "$(awk -v k="$d_rss" 'BEGIN{print k/1024}')"
fi
echo "   (target < 15 MB)"
