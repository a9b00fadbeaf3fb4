#!/usr/bin/env bash
# berthd's builder against dockerd 20.10's classic builder (Debian's docker.io), with the same
# docker CLI as client (DOCKER_BUILDKIT=0), the same Dockerfiles and the same context:
#   - a 20-step Dockerfile of four stages: two independent stages doing CPU work in RUN steps
#     (about 1 s each here with the default WORK), a third one copying both with COPY --from,
#     and a final one with COPY of the context and more steps; the context is FILES files of
#     SIZE_KB kB of random data in nested directories (10,000 x 10 kB, 100 MB, by default),
#     made once per run of the script;
#   - cold build (images and build cache removed before), no-op rebuild, and rebuild after
#     one file of the context changed (the COPY of the context and what follows run again);
#     RUNS times each, the engines alternating (which goes first rotates by round), medians;
#   - the same with the berth CLI (`berth build`) against berthd, when it has that command;
#   - the context alone: a build of `FROM` only (the context still sent and read: dockerd extracts it, berthd indexes it), and of
#     `FROM` + `COPY . /ctx`, cached (the context checksummed too) and after one file changed;
#   - berthd's peak RSS during the cold builds (VmHWM after `clear_refs` 5), and whether its two
#     independent stages overlapped (a step of one started before the other's last step).
# Goals (the issue): cold <= 0.7 x docker, no-op rebuild <= 0.2 x, one file changed <= 0.5 x.
# RUN steps get loopback only on both sides: berthd's builds with `--network none`, dockerd's
# with its default network under --bridge=none (as in engine.sh).
#
# Usage (as root, from the repository root): bench/build.sh
#   RUNS=3 FILES=10000 SIZE_KB=10 WORK=800000 (lines written by a RUN loop, ~1 s here),
#   TMPDIR=/run (where the context and the daemons' roots go)
set -euo pipefail
RUNS=${RUNS:-3}
FILES=${FILES:-10000}
SIZE_KB=${SIZE_KB:-10}
WORK=${WORK:-800000}
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
cargo build --release -q -p berth-daemon -p berth-monitor -p berth-runtime -p berth-cli -p berth-init
bin=${CARGO_TARGET_DIR:-$repo/target}/release
export BERTH_RUNTIME=${BERTH_RUNTIME:-$bin/berth-runtime}

# short: berthd binds sockets at EXEC_ROOT/c/<64 hex>/monitor.sock (sun_path is 108 bytes).
# TMPDIR=/dev/shm puts the context and both data roots in memory.
tmp=$(mktemp -d "${TMPDIR:-/run}/bbuild.XXXXXX")
pids=()
cleanup() {
  remove_containers "$tmp/berth.sock" "$tmp/docker.sock"
  stop_pids "${pids[@]}"
  umount_under "$tmp"
  rm -rf "$tmp"
  ip link del bbuild0 2>/dev/null || true
  nft delete table ip berth_buildbench 2>/dev/null || true
  nft delete table ip6 berth_buildbench 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

busybox_tar "$tmp"
"$bin/berthd" -H "unix://$tmp/berth.sock" --data-root "$tmp/berth-data" --exec-root "$tmp/b" \
  --bridge bbuild0 --nft-table berth_buildbench --config-file /nonexistent -l warn \
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
B import "$tmp/busybox.tar" bb:bench >/dev/null
[ "$have_dockerd" = 1 ] && D import "$tmp/busybox.tar" bb:bench >/dev/null

# The contenders: berthd and dockerd through the docker CLI, berthd through the berth CLI if it
# has `build` (with --network none if it has that flag).
contenders=(berth)
[ "$have_dockerd" = 1 ] && contenders+=(docker)
berth_build=()
if help=$("$bin/berth" build --help 2>&1); then
  berth_build=("$bin/berth" build)
  if grep -q -- '--network' <<<"$help"; then berth_build+=(--network none); fi
  contenders+=(berth-cli)
fi

# The context: FILES files of SIZE_KB kB of random data, 100 a directory, 10 directories a
# directory (src/a0/b0/f0 ... ), and the Dockerfiles beside src/.
ctx=$tmp/ctx
python3 - "$ctx/src" "$FILES" "$SIZE_KB" <<'PY'
import os, sys
root, n, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, "a%d" % (i // 1000), "b%d" % (i // 100 % 10))
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d" % i), "wb") as f:
        f.write(os.urandom(kb * 1024))
PY
changed=$(find "$ctx/src" -type f -name "f$((FILES / 2))")
ctx_bytes=$(find "$ctx/src" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
half=$((WORK / 2))
# 20 steps; the two first stages are independent (berthd runs them at once, dockerd one after
# the other); every step but the four FROMs is cacheable (16), 11 of them before `COPY .`.
cat >"$ctx/Dockerfile" <<EOF
FROM bb:bench AS one
RUN mkdir /out && for i in \$(seq 1 $WORK); do echo "one \$i"; done > /out/a
RUN i=0; while [ \$i -lt $half ]; do i=\$((i + 1)); done; echo "one \$i" > /out/n
RUN sha256sum /out/a /out/n > /out/sum
FROM bb:bench AS two
RUN mkdir /out && for i in \$(seq 1 $WORK); do echo "two \$i"; done > /out/a
RUN i=0; while [ \$i -lt $half ]; do i=\$((i + 1)); done; echo "two \$i" > /out/n
RUN sha256sum /out/a /out/n > /out/sum
FROM bb:bench AS three
COPY --from=one /out /one
COPY --from=two /out /two
RUN cat /one/sum /two/sum | sha256sum > /both.sum
FROM bb:bench
COPY --from=three /both.sum /three.sum
WORKDIR /app
COPY . /app/src
RUN find src -type f -exec cat {} + | wc -c > /app/bytes
RUN find src -type f | wc -l > /app/count
ENV BENCH=1
CMD ["cat", "/app/count"]
EOF
printf 'FROM bb:bench\n' >"$ctx/Dockerfile.ctx"
printf 'FROM bb:bench\nCOPY . /ctx\n' >"$ctx/Dockerfile.copy"

sock_of() { if [ "$1" = docker ]; then echo "$tmp/docker.sock"; else echo "$tmp/berth.sock"; fi; }
pid_of() { if [ "$1" = docker ]; then echo "$dockerd_pid"; else echo "$berthd_pid"; fi; }
kb_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# build CONTENDER DOCKERFILE TAG OUT: one build (after a sync, untimed), its output in OUT;
# prints its wall time in ms. A failed build ends the script.
build() {
  local c=$1 cmd t0 t1 rc=0
  case $c in
    berth) cmd=("$DOCKER" build --network none) ;;
    docker) cmd=("$DOCKER" build) ;;
    berth-cli) cmd=("${berth_build[@]}") ;;
  esac
  sync
  t0=$EPOCHREALTIME
  DOCKER_HOST=unix://$(sock_of "$c") DOCKER_BUILDKIT=0 "${cmd[@]}" -f "$ctx/$2" -t "$3" "$ctx" >"$4" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  if [ "$rc" != 0 ]; then
    { echo "$c: build of $2 failed ($rc):"; tail -20 "$4"; } >&2
    exit 1
  fi
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'
}
# check CONTENDER OUT N: the build's output says "Using cache" N times (skipped for an output
# without classic "Step" lines: the berth CLI may print its own).
check() {
  local n
  grep -q '^Step ' "$2" || return 0
  n=$(grep -c 'Using cache' "$2" || true)
  [ "$n" = "$3" ] || { echo "$1: $n cached steps where $3 were expected; output:" >&2; cat "$2" >&2; exit 1; }
}
# note_cache CONTENDER OUT N: as check, but a different count is only noted (the context rows
# are diagnostics: dockerd 20.10's classic builder misses the cache of `COPY .` of a large
# context now and then, and that is its figure).
note_cache() {
  local n
  grep -q '^Step ' "$2" || return 0
  n=$(grep -c 'Using cache' "$2" || true)
  [ "$n" = "$3" ] || echo "note: $1 used the cache $n times where $3 were expected" >>"$res/notes"
}
# clear_cache CONTENDER: removes the images the builds made and the build cache. dockerd's classic
# cache is the intermediate images: rmi takes the final image's parents, `image prune` the
# untagged stage images with theirs (`builder prune` only empties BuildKit's cache); checked by
# `images -a` holding the base image alone.
clear_cache() {
  local s
  s=unix://$(sock_of "$1")
  DOCKER_HOST=$s "$DOCKER" rmi -f bench:build bench:ctx bench:copy >/dev/null 2>&1 || true
  # (the docker CLI warns on stderr that the legacy builder is deprecated)
  DOCKER_HOST=$s "$DOCKER" builder prune -af >"$tmp/prune" 2>&1 || { cat "$tmp/prune" >&2; exit 1; }
  DOCKER_HOST=$s "$DOCKER" image prune -f >/dev/null
  if [ "$1" = docker ] && [ "$(D images -aq | sort -u | wc -l)" != 1 ]; then
    { echo "dockerd: images left after clearing:"; D images -a; } >&2
    exit 1
  fi
}
# change: one file of the context gets new random bytes (same size).
change() { head -c "$((SIZE_KB * 1024))" /dev/urandom >"$changed"; }
# order ROUND: the contenders, rotated by the round.
order() {
  local i n=${#contenders[@]}
  for ((i = 0; i < n; i++)); do echo "${contenders[(i + $1) % n]}"; done
}
res=$tmp/res
mkdir -p "$res"
out=$tmp/out.txt

# Cold builds, with berthd's peak RSS and the stages' overlap.
for r in $(seq "$RUNS"); do
  for c in $(order "$r"); do
    clear_cache "$c"
    pid=$(pid_of "$c")
    echo 5 >"/proc/$pid/clear_refs"
    before=$(kb_of "$pid" VmRSS)
    build "$c" Dockerfile bench:build "$out" >>"$res/cold.$c"
    echo "$(kb_of "$pid" VmHWM) $before" >>"$res/rss.$c"
    check "$c" "$out" 0
    # Overlap: the step numbers in output order; stage one is steps 1-4, stage two 5-8.
    grep -o 'Step [0-9]*/' "$out" | tr -dc '0-9\n' | awk '
      $1 <= 4 { if (!f1) f1 = NR; l1 = NR } $1 >= 5 && $1 <= 8 { if (!f2) f2 = NR; l2 = NR }
      END { print (f1 && f2 && f2 < l1 && f1 < l2) ? 1 : 0 }' >>"$res/overlap.$c"
  done
done
# No-op rebuilds, after one untimed rebuild each.
for c in "${contenders[@]}"; do build "$c" Dockerfile bench:build "$out" >/dev/null; done
for r in $(seq "$RUNS"); do
  for c in $(order "$r"); do
    build "$c" Dockerfile bench:build "$out" >>"$res/noop.$c"
    check "$c" "$out" 16
  done
done
# One file changed before each build.
for r in $(seq "$RUNS"); do
  for c in $(order "$r"); do
    change
    build "$c" Dockerfile bench:build "$out" >>"$res/change.$c"
    check "$c" "$out" 11
  done
done
# The context alone: FROM only; FROM + COPY . cached; the same after one file changed.
for c in "${contenders[@]}"; do
  build "$c" Dockerfile.ctx bench:ctx "$out" >/dev/null
  build "$c" Dockerfile.copy bench:copy "$out" >/dev/null
done
for r in $(seq "$RUNS"); do
  for c in $(order "$r"); do build "$c" Dockerfile.ctx bench:ctx "$out" >>"$res/ctx.$c"; done
  for c in $(order "$r"); do
    build "$c" Dockerfile.copy bench:copy "$out" >>"$res/copy.$c"
    note_cache "$c" "$out" 1
  done
  for c in $(order "$r"); do
    change
    build "$c" Dockerfile.copy bench:copy "$out" >>"$res/copyx.$c"
    note_cache "$c" "$out" 0
  done
done

[ -s "$res/notes" ] && sort "$res/notes" | uniq -c | sed 's/^ */(x/; s/ /) /'
med() { if [ -s "$res/$1.$2" ]; then median <"$res/$1.$2"; else echo 0; fi; }
runs_of() { if [ -s "$res/$1.$2" ]; then paste -sd' ' "$res/$1.$2"; fi; }
total() { awk '{ s += $1 } END { print s + 0 }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# verdict RATIO GOAL
verdict() { awk -v r="$1" -v g="$2" 'BEGIN { if (r == "-") print "-"; else print (r <= g) ? "ok" : "MISSED" }'; }

echo "berthd $("$bin/berthd" --version | awk '{print $2}') vs dockerd $([ "$have_dockerd" = 1 ] && /usr/sbin/dockerd --version | awk '{print $3}' | tr -d , || echo -)"
echo "$(nproc) cpus, kernel $(uname -r), client $("$DOCKER" --version), DOCKER_BUILDKIT=0"
echo "context: $FILES files of $SIZE_KB kB ($(awk -v b="$ctx_bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }')); WORK=$WORK; medians of $RUNS runs, engines alternating"
echo
printf '%-30s %11s %11s %7s %7s %11s %7s\n' "" "berthd" "dockerd" "ratio" "goal" "berth CLI" "ratio"
row() { # NAME KEY GOAL
  local b d c rb rc
  b=$(med "$2" berth)
  d=$(med "$2" docker)
  c=$(med "$2" berth-cli)
  rb=$(ratio "$b" "$d")
  rc=$(ratio "$c" "$d")
  printf '%-30s %8.1f ms %8s ms %7s %7s' "$1" "$b" "$([ "$have_dockerd" = 1 ] && printf '%.1f' "$d" || echo -)" "$rb" "$3"
  if [ -n "${berth_build[*]}" ]; then printf ' %8.1f ms %7s' "$c" "$rc"; fi
  echo
  eval "ratio_$2=\$rb"
}
row "cold build (20 steps)" cold "<= 0.70"
row "no-op rebuild" noop "<= 0.20"
row "rebuild, one file changed" change "<= 0.50"
row "context only (FROM alone)" ctx ""
row "FROM + COPY . /ctx, cached" copy ""
row "FROM + COPY . /ctx, 1 changed" copyx ""
[ -n "${berth_build[*]}" ] || echo "berth build: n/a (the berth CLI has no build command)"
echo
for c in "${contenders[@]}"; do
  printf '%-10s ' "$c"
  for k in cold noop change ctx copy copyx; do printf '%s: %s; ' "$k" "$(runs_of "$k" "$c")"; done
  echo
done | sed 's/; $//; s/^/runs (ms) /'
echo
for c in berth docker; do
  [ -s "$res/ctx.$c" ] || continue
  name=berthd
  [ "$c" = docker ] && name=dockerd
  awk -v n="$name" -v x="$(med ctx "$c")" -v y="$(med copy "$c")" -v z="$(med copyx "$c")" 'BEGIN {
    printf "%s: context sent and read %.1f ms; its checksum (COPY cached - FROM only) %.1f ms; copy and commit (changed - cached) %.1f ms\n", n, x, y - x, z - y }'
done
b_hwm=$(cat "$res"/rss.berth* | sort -n | tail -1)
printf 'berthd peak RSS during the cold builds: %s MB (VmHWM; %s MB above its RSS before)' \
  "$(mb "${b_hwm% *}")" "$(mb $((${b_hwm% *} - ${b_hwm#* })))"
if [ "$have_dockerd" = 1 ]; then
  d_hwm=$(sort -n "$res/rss.docker" | tail -1)
  printf '; dockerd %s MB (%s MB above; containerd not counted)' "$(mb "${d_hwm% *}")" "$(mb $((${d_hwm% *} - ${d_hwm#* })))"
fi
echo
printf 'independent stages overlapped: berthd in %s of %s cold builds' "$(total <"$res/overlap.berth")" "$RUNS"
[ "$have_dockerd" = 1 ] && printf ', dockerd in %s of %s' "$(total <"$res/overlap.docker")" "$RUNS"
echo
if [ "$have_dockerd" = 1 ]; then
  # shellcheck disable=SC2154 # set by row through eval
  echo "goals (berthd/dockerd, docker CLI): cold $ratio_cold <= 0.7 $(verdict "$ratio_cold" 0.7)," \
    "no-op $ratio_noop <= 0.2 $(verdict "$ratio_noop" 0.2)," \
    "one file changed $ratio_change <= 0.5 $(verdict "$ratio_change" 0.5)"
fi
