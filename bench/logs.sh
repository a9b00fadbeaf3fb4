#!/usr/bin/env bash
# `docker logs` of a large json-file log, berthd against dockerd 20.10 (Debian's docker.io), with
# the same docker CLI as client (issue 12):
#   - `logs --tail 1` of a log of SIZE bytes (median of ROUNDS), against the same on a one-line
#     log: the target is a time that does not grow with the log;
#   - `logs > /dev/null` of the whole log (median of 3), as MB/s of log file: the target is at
#     least dockerd's;
#   - the daemon's peak RSS during each, above its RSS before (VmHWM after `clear_refs` 5): the
#     target for berthd is under 10 MB.
# The log is written straight into the json-file of a stopped container of each daemon (the same
# bytes for both: Docker's format, one record a line, times in order), not printed by the
# container: that would time the log writers, not the readers. The file is read once before the
# timed runs, so both read it from the page cache.
#
# Usage (as root, from the repository root): bench/logs.sh    (SIZE=1G, ROUNDS=5)
set -euo pipefail
SIZE=${SIZE:-1G}
ROUNDS=${ROUNDS:-5}
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
size=$(numfmt --from=iec "$SIZE")
cargo build --release -q -p berth-daemon -p berth-monitor -p berth-runtime
bin=$repo/target/release

# short: berthd binds sockets at EXEC_ROOT/c/<64 hex>/monitor.sock (sun_path is 108 bytes)
tmp=$(mktemp -d /run/blogs.XXXXXX)
pids=()
cleanup() {
  remove_containers "$tmp/berth.sock" "$tmp/docker.sock"
  stop_pids "${pids[@]}"
  umount_under "$tmp"
  rm -rf "$tmp"
  ip link del blogs0 2>/dev/null || true
  nft delete table ip berth_logbench 2>/dev/null || true
  nft delete table ip6 berth_logbench 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

busybox_tar "$tmp"
"$bin/berthd" -H "unix://$tmp/berth.sock" --data-root "$tmp/berth-data" --exec-root "$tmp/b" \
  --bridge blogs0 --nft-table berth_logbench --config-file /nonexistent -l warn \
  >"$tmp/berthd.log" 2>&1 &
pids+=($!)
berthd_pid=$!
wait_for "$tmp/berth.sock"
if [ "$have_dockerd" = 1 ]; then
  /usr/sbin/dockerd --data-root "$tmp/docker-data" --exec-root "$tmp/d" -H "unix://$tmp/docker.sock" \
    --pidfile "$tmp/docker.pid" --bridge=none --iptables=false --ip-masq=false \
    --userland-proxy=false --storage-driver overlay2 >"$tmp/dockerd.log" 2>&1 &
  pids+=($!)
  dockerd_pid=$!
  wait_for "$tmp/docker.sock"
fi
B() { DOCKER_HOST=unix://$tmp/berth.sock "$DOCKER" "$@"; }
D() { DOCKER_HOST=unix://$tmp/docker.sock "$DOCKER" "$@"; }
engines=(B)
[ "$have_dockerd" = 1 ] && engines+=(D)

# The log: records of 70-90 bytes of text, times one microsecond apart from an hour ago, made
# a megabyte at a time by python3 (about 3 s a gigabyte).
python3 - "$tmp/big.log" "$size" <<'PY'
import sys, time
path, size = sys.argv[1], int(sys.argv[2])
start = int(time.time()) - 3600
words = "the quick brown fox jumps over the lazy dog while the log grows ".split()
texts = [" ".join(words[(i * 7) % 9:] + words[:(i * 7) % 9]) for i in range(9)]
second = lambda s: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + s))
with open(path, "wb", buffering=1 << 20) as f:
    n = written = 0
    while written < size:
        t = second(n // 1_000_000)
        lines = []
        for n in range(n, n + 10_000):  # 10_000 divides 1_000_000: one second a block
            lines.append('{"log":"%08d %s\\n","stream":"%s","time":"%s.%06d000Z"}\n'
                         % (n, texts[n % 9], "stderr" if n % 50 == 0 else "stdout", t, n % 1_000_000))
        n += 1
        block = "".join(lines).encode()
        f.write(block)
        written += len(block)
    last = "the last line"
    f.write(('{"log":"%s\\n","stream":"stdout","time":"%s.999999999Z"}\n'
             % (last, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + n // 1_000_000 + 1)))).encode())
PY
log_bytes=$(stat -c %s "$tmp/big.log")
log_lines=$(wc -l <"$tmp/big.log")

# Per engine: the big container and a one-line one, stopped, their logs replaced.
for e in "${engines[@]}"; do
  "$e" import "$tmp/busybox.tar" bb:bench >/dev/null
  net=()
  [ "$e" = B ] && net=(--network none)
  "$e" run "${net[@]}" --name biglog bb:bench true >/dev/null
  "$e" run "${net[@]}" --name onelog bb:bench echo "just one line" >/dev/null
  cp "$tmp/big.log" "$("$e" inspect -f '{{.LogPath}}' biglog)"
  cat "$("$e" inspect -f '{{.LogPath}}' biglog)" >/dev/null
done

pid_of() { if [ "$1" = B ]; then echo "$berthd_pid"; else echo "$dockerd_pid"; fi; }
rss_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# peak ENGINE COMMAND...: runs the command (stdout discarded); prints "MS PEAK_GROWTH_KB", the
# daemon's VmHWM during it above its VmRSS before.
peak() {
  local e=$1 pid t0 t1 before
  shift
  pid=$(pid_of "$e")
  echo 5 >"/proc/$pid/clear_refs"
  before=$(rss_kb "$pid" VmRSS)
  t0=$EPOCHREALTIME
  "$@" >/dev/null 2>&1
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" -v h="$(rss_kb "$pid" VmHWM)" -v r="$before" \
    'BEGIN { printf "%.1f %d\n", (b - a) * 1000, h - r }'
}
# runs ENGINE N COMMAND...: N runs after one warm-up; prints the median ms and the largest
# peak growth in kB.
runs() {
  local e=$1 n=$2
  shift 2
  peak "$e" "$@" >/dev/null
  for _ in $(seq "$n"); do peak "$e" "$@"; done >"$tmp/runs"
  echo "$(cut -d' ' -f1 "$tmp/runs" | median) $(cut -d' ' -f2 "$tmp/runs" | sort -n | tail -1)"
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo "berthd $("$bin/berthd" --version | awk '{print $2}') vs dockerd $([ "$have_dockerd" = 1 ] && /usr/sbin/dockerd --version | awk '{print $3}' | tr -d , || echo -)"
echo "$(nproc) cpus, kernel $(uname -r), client $("$DOCKER" --version)"
echo "log: $(awk -v b="$log_bytes" 'BEGIN { printf "%.0f MB", b / 1e6 }'), $log_lines lines; tail: median of $ROUNDS, full: median of 3"
echo
printf '%-28s %12s %12s %12s %10s\n' "" "time" "rss peak +" "1-line log" "MB/s"
for e in "${engines[@]}"; do
  name=berthd
  [ "$e" = D ] && name=dockerd
  read -r t_tail r_tail < <(runs "$e" "$ROUNDS" "$e" logs --tail 1 biglog)
  read -r t_one _ < <(runs "$e" "$ROUNDS" "$e" logs --tail 1 onelog)
  [ "$("$e" logs --tail 1 biglog 2>&1)" = "the last line" ] || { echo "$name: wrong last line" >&2; exit 1; }
  printf '%-28s %9s ms %9s MB %9s ms\n' "$name logs --tail 1" "$t_tail" "$(mb "$r_tail")" "$t_one"
  read -r t_full r_full < <(runs "$e" 3 "$e" logs biglog)
  n=$("$e" logs biglog 2>&1 | wc -l)
  [ "$n" = "$log_lines" ] || { echo "$name: $n lines of $log_lines" >&2; exit 1; }
  printf '%-28s %9s ms %9s MB %12s %10s\n' "$name logs > /dev/null" "$t_full" "$(mb "$r_full")" "" \
    "$(awk -v b="$log_bytes" -v t="$t_full" 'BEGIN { printf "%.0f", b / 1e6 / (t / 1000) }')"
  eval "${e}_tail=$t_tail ${e}_one=$t_one ${e}_full=$t_full ${e}_rss=$(( r_tail > r_full ? r_tail : r_full ))"
done
echo
awk -v t="$B_tail" -v o="$B_one" 'BEGIN { printf "berthd --tail 1: %s ms on %s, %s ms on one line %s\n", t, "'"$SIZE"'", o, (t - o < 50) ? "(ok: O(1) of the log size)" : "(MISSED)" }'
awk -v r="$B_rss" 'BEGIN { printf "berthd peak RSS growth: %.1f MB %s\n", r / 1024, (r < 10240) ? "(ok: < 10 MB)" : "(MISSED: >= 10 MB)" }'
if [ "$have_dockerd" = 1 ]; then
  awk -v b="$B_full" -v d="$D_full" 'BEGIN { printf "full read: berthd/dockerd time %.2f %s\n", b / d, (b <= d) ? "(ok: >= dockerd throughput)" : "(MISSED)" }'
fi
