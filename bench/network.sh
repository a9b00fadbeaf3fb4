#!/usr/bin/env bash
# What the default bridge network costs, berthd against dockerd 20.10 (Debian's docker.io), on the
# same busybox image and with the same docker CLI as client (issue 5):
#   - `run --rm IMG true` on the default bridge against `--network none`: medians over N runs each,
#     bridge and none alternating, after warm-up; berthd through the docker CLI and through the
#     berth CLI, dockerd through the docker CLI. Target: the bridge adds at most 5 ms to berth's.
#   - TCP throughput from the host into a container (iperf3, SIZE bytes, median of 3): direct to the
#     container's address (the ceiling), through a port published on 127.0.0.1 and on the host's
#     non-loopback address. dockerd runs with --userland-proxy=false: both engines go through
#     kernel NAT.
# Each daemon gets a private bridge and /24 (berthd: --bridge/--bip/--nft-table; dockerd: a bridge
# made here, --bridge), its own roots, socket and pidfile under /run. dockerd changes the host's
# firewall (its iptables chains and rules; the FORWARD policy if ip_forward was off; br_netfilter):
# all that is saved before and put back on exit (failure and ctrl-c included), and the host is
# checked against what it was.
#
# Usage (as root, from the repository root): bench/network.sh
#   N=runs (default 20), SIZE of a transfer (1G), WARMUP runs per configuration (3)
set -euo pipefail
N=${N:-20}
SIZE=${SIZE:-1G}
WARMUP=${WARMUP:-3}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
DOCKER=${DOCKER_CLI:-$(command -v docker || echo /usr/local/bin/docker)}
[ -x "$DOCKER" ] || { echo "no docker CLI" >&2; exit 2; }
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

# Private names and subnets: berthd's and dockerd's bridges, berthd's nft table, host ports.
B_BR=bnetb0 B_NET=10.231.77 B_TABLE=berth_netbench
D_BR=bnetd0 D_NET=10.231.78
PORTS=(15801 15802 15803 15804) # berth 127.0.0.1, berth host address, docker 127.0.0.1, docker host

have_dockerd=1
if [ ! -x /usr/sbin/dockerd ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null \
    || have_dockerd=0
fi
command -v iperf3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
for c in iperf3 iptables-save ip6tables-save nft ip python3; do
  command -v "$c" >/dev/null || { echo "missing $c" >&2; exit 2; }
done
# Refuse to run over what would collide.
for l in "$B_BR" "$D_BR"; do
  ! ip link show "$l" >/dev/null 2>&1 || { echo "interface $l exists" >&2; exit 2; }
done
for n in "$B_NET" "$D_NET"; do
  ! ip -4 route | grep -q "^$n\." || { echo "$n.0/24 is routed already" >&2; exit 2; }
done
! nft list table ip "$B_TABLE" >/dev/null 2>&1 || { echo "nft table $B_TABLE exists" >&2; exit 2; }
# Another dockerd with iptables on would share the chains that are removed at the end.
! iptables-save | grep -q '^:DOCKER' || { echo "iptables has DOCKER chains: another dockerd runs" >&2; exit 2; }
for p in "${PORTS[@]}"; do
  ! ss -Htln "sport = :$p" | grep -q . || { echo "port $p is in use" >&2; exit 2; }
done
host_ip=$(ip -4 -o addr show scope global | awk -v b="$B_BR" -v d="$D_BR" '$2 != b && $2 != d { sub("/.*", "", $4); print $4, $2; exit }')
host_if=${host_ip#* }
host_ip=${host_ip% *}

cargo build --release -q -p berth-daemon -p berth-monitor -p berth-runtime -p berth-cli
bin=$repo/target/release

# short: berthd binds sockets at EXEC_ROOT/c/<64 hex>/monitor.sock (sun_path is 108 bytes)
tmp=$(mktemp -d /run/bnet.XXXXXX)
pids=()

# --- the host's state, before -------------------------------------------------------------------
# iptables dumps without comments and counters; the raw dumps are what a restore would load.
ipt_norm() { { grep -v '^#' || true; } | sed 's/\[[0-9]*:[0-9]*\]$/[0:0]/'; }
snapshot() { # DIR
  mkdir -p "$1"
  iptables-save >"$1/iptables.raw"
  ip6tables-save >"$1/ip6tables.raw"
  ipt_norm <"$1/iptables.raw" >"$1/iptables"
  ipt_norm <"$1/ip6tables.raw" >"$1/ip6tables"
  nft list ruleset >"$1/nft.ruleset" 2>/dev/null || true
  nft list tables | sort >"$1/nft.tables"
  ip -o link show | awk -F': ' '{ sub("@.*", "", $2); print $2 }' | sort >"$1/links"
  awk '{ print $2, $3 }' /proc/self/mounts | sort >"$1/mounts"
  cat /proc/sys/net/ipv4/ip_forward >"$1/ip_forward"
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    cat /proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/bridge/bridge-nf-call-ip6tables >"$1/br_nf"
  else
    echo absent >"$1/br_nf"
  fi
}

# --- cleanup ------------------------------------------------------------------------------------
# dockerd's iptables rules: the rules of built-in chains that jump to DOCKER* chains or name its
# bridge or subnet are deleted one by one, then the DOCKER* chains flushed and deleted; so rules
# others add meanwhile stay. Only if the dump still differs from the saved one is the saved dump
# restored (iptables-restore replaces the tables it names).
undocker() { # iptables|ip6tables
  local cmd=$1 t line chain
  for t in filter nat; do
    "$cmd-save" -t "$t" >/dev/null 2>&1 || continue
    "$cmd-save" -t "$t" | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ' \
      | grep -E -- "-j DOCKER|$D_BR|${D_NET//./\\.}\." | while read -r line; do
      eval "$cmd -t $t -D ${line#-A }" 2>/dev/null || true
    done
    for chain in $("$cmd-save" -t "$t" | awk -F'[: ]' '/^:DOCKER/ { print $2 }'); do
      "$cmd" -t "$t" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$cmd-save" -t "$t" | awk -F'[: ]' '/^:DOCKER/ { print $2 }'); do
      "$cmd" -t "$t" -X "$chain" 2>/dev/null || true
    done
  done
  local was now
  was=$(awk '$1 == ":FORWARD" { print $2 }' "$tmp/before/$cmd")
  now=$("$cmd-save" -t filter 2>/dev/null | awk '$1 == ":FORWARD" { print $2 }')
  if [ -n "$was" ] && [ "$was" != "$now" ]; then "$cmd" -t filter -P FORWARD "$was" 2>/dev/null || true; fi
}
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  remove_containers "$tmp/berth.sock" "$tmp/docker.sock"
  stop_pids "${pids[@]}"
  umount_under "$tmp"
  ip link del "$B_BR" 2>/dev/null
  ip link del "$D_BR" 2>/dev/null
  nft delete table ip "$B_TABLE" 2>/dev/null
  nft delete table ip6 "$B_TABLE" 2>/dev/null
  [ -d "$tmp/before" ] || { rm -rf "$tmp"; exit "$rc"; }
  if [ "$have_dockerd" = 1 ]; then
    undocker iptables
    undocker ip6tables
  fi
  cat "$tmp/before/ip_forward" >/proc/sys/net/ipv4/ip_forward
  if [ "$(cat "$tmp/before/br_nf")" = absent ]; then
    [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && modprobe -r br_netfilter 2>/dev/null
  else
    { read -r v4; read -r v6; } <"$tmp/before/br_nf"
    echo "$v4" >/proc/sys/net/bridge/bridge-nf-call-iptables
    echo "$v6" >/proc/sys/net/bridge/bridge-nf-call-ip6tables
  fi
  # The check: what differs from before (on a shared machine others' changes show here too).
  snapshot "$tmp/after"
  local f bad=0
  for f in iptables ip6tables; do
    if ! cmp -s "$tmp/before/$f" "$tmp/after/$f"; then
      echo "host check: $f differs after the targeted cleanup; restoring the saved dump:" >&2
      diff "$tmp/before/$f" "$tmp/after/$f" | sed 's/^/  /' >&2
      "$f-restore" <"$tmp/before/$f.raw"
      "$f-save" | ipt_norm | cmp -s - "$tmp/before/$f" || { echo "  $f: still differs" >&2; bad=1; }
    fi
  done
  for f in nft.tables links ip_forward br_nf; do
    cmp -s "$tmp/before/$f" "$tmp/after/$f" && continue
    echo "host check: $f differs from before:" >&2
    diff "$tmp/before/$f" "$tmp/after/$f" | sed 's/^/  /' >&2
    bad=1
  done
  if grep -q " $tmp/" "$tmp/after/mounts"; then
    echo "host check: mounts left under $tmp:" >&2
    grep " $tmp/" "$tmp/after/mounts" | sed 's/^/  /' >&2
    bad=1
  fi
  if [ "$bad" = 0 ]; then
    echo "host check: iptables, ip6tables, nft tables, links, mounts, sysctls as before" >&2
  else
    # What it was (nft ruleset included, which is not restored wholesale: others' tables live
    # there), for a look by hand.
    local keep
    keep=$(mktemp -d /run/bnet-before.XXXXXX)
    cp -a "$tmp/before/." "$keep/"
    echo "host check: the state before is kept in $keep" >&2
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
snapshot "$tmp/before"

# --- daemons and image --------------------------------------------------------------------------
busybox_tar "$tmp"

"$bin/berthd" -H "unix://$tmp/berth.sock" --data-root "$tmp/berth-data" --exec-root "$tmp/b" \
  --bridge "$B_BR" --bip "$B_NET.1/24" --nft-table "$B_TABLE" --config-file /nonexistent -l warn \
  >"$tmp/berthd.log" 2>&1 &
pids+=($!)
wait_for "$tmp/berth.sock"
if [ "$have_dockerd" = 1 ]; then
  # dockerd's -b takes an existing bridge (and its address) and excludes --bip: made here, so that
  # it is not docker0, which another dockerd on the host may own.
  ip link add "$D_BR" type bridge
  ip addr add "$D_NET.1/24" dev "$D_BR"
  ip link set "$D_BR" up
  /usr/sbin/dockerd --data-root "$tmp/docker-data" --exec-root "$tmp/d" -H "unix://$tmp/docker.sock" \
    --pidfile "$tmp/docker.pid" --bridge "$D_BR" --userland-proxy=false \
    --storage-driver overlay2 >"$tmp/dockerd.log" 2>&1 &
  pids+=($!)
  wait_for "$tmp/docker.sock"
fi

B() { DOCKER_HOST=unix://$tmp/berth.sock "$DOCKER" "$@"; }
D() { DOCKER_HOST=unix://$tmp/docker.sock "$DOCKER" "$@"; }
C() { "$bin/berth" -H "unix://$tmp/berth.sock" "$@"; }
B import "$tmp/busybox.tar" bb:bench >/dev/null
[ "$have_dockerd" = 1 ] && D import "$tmp/busybox.tar" bb:bench >/dev/null

echo "berthd $("$bin/berthd" --version | awk '{print $2}') vs dockerd $([ "$have_dockerd" = 1 ] && /usr/sbin/dockerd --version | awk '{print $3}' | tr -d , || echo -) (userland proxy off)"
echo "$(nproc) cpus, kernel $(uname -r), N=$N, client $("$DOCKER" --version)"
echo

# --- 1. run --rm: bridge against none -----------------------------------------------------------
# Configurations: name and client; each runs `run --rm [--network none] bb:bench true`.
confs=(berth-docker berth-cli)
[ "$have_dockerd" = 1 ] && confs+=(docker-docker)
client() { # CONF: the client function
  case $1 in berth-docker) echo B ;; berth-cli) echo C ;; docker-docker) echo D ;; esac
}
for c in "${confs[@]}"; do
  cl=$(client "$c")
  for _ in $(seq "$WARMUP"); do
    "$cl" run --rm bb:bench true >/dev/null
    "$cl" run --rm --network none bb:bench true >/dev/null
  done
done
# Round i: for each configuration, bridge then none (none first on odd rounds).
for i in $(seq "$N"); do
  for c in "${confs[@]}"; do
    cl=$(client "$c")
    if [ $((i % 2)) = 0 ]; then
      ms "$cl" run --rm bb:bench true >>"$tmp/$c.bridge"
      ms "$cl" run --rm --network none bb:bench true >>"$tmp/$c.none"
    else
      ms "$cl" run --rm --network none bb:bench true >>"$tmp/$c.none"
      ms "$cl" run --rm bb:bench true >>"$tmp/$c.bridge"
    fi
  done
done
printf '%-44s %10s %10s %12s %14s\n' "run --rm IMG true (median of $N)" bridge none "bridge-none" "paired diff"
for c in "${confs[@]}"; do
  mb=$(median <"$tmp/$c.bridge")
  mn=$(median <"$tmp/$c.none")
  # The median of the differences of the runs made next to each other.
  pd=$(paste "$tmp/$c.bridge" "$tmp/$c.none" | awk '{ printf "%.1f\n", $1 - $2 }' | median)
  d=$(awk -v a="$mb" -v b="$mn" 'BEGIN { printf "%.1f", a - b }')
  case $c in
    berth-docker) label="berthd, docker CLI" ;;
    berth-cli) label="berthd, berth CLI" ;;
    docker-docker) label="dockerd, docker CLI" ;;
  esac
  printf '%-44s %7.1f ms %7.1f ms %+9.1f ms %+11.1f ms' "$label" "$mb" "$mn" "$d" "$pd"
  case $c in
    berth-*) awk -v d="$d" 'BEGIN { printf "   %s (target <= 5 ms)", (d <= 5) ? "ok" : "MISSED" }' ;;
  esac
  echo
done
echo

# --- 2. TCP throughput --------------------------------------------------------------------------
# The sink: the host's iperf3 server, run inside the busybox container through the host's dynamic
# loader and libraries, mounted read-only.
lib=$(dirname "$(readlink -f /lib64/ld-linux-x86-64.so.2)")
sink=(-v "$lib:/hostlib:ro" -v "$(readlink -f "$(command -v iperf3)"):/iperf3:ro" bb:bench
  /hostlib/ld-linux-x86-64.so.2 --library-path /hostlib /iperf3 -s -p 5001)
pub=()
[ -n "$host_ip" ] && pub=(-p "$host_ip:${PORTS[1]}:5001")
B run -d --name netbench-sink -p "127.0.0.1:${PORTS[0]}:5001" "${pub[@]}" "${sink[@]}" >/dev/null
b_ip=$(B inspect -f '{{.NetworkSettings.IPAddress}}' netbench-sink)
engines=(berth)
if [ "$have_dockerd" = 1 ]; then
  pub=()
  [ -n "$host_ip" ] && pub=(-p "$host_ip:${PORTS[3]}:5001")
  D run -d --name netbench-sink -p "127.0.0.1:${PORTS[2]}:5001" "${pub[@]}" "${sink[@]}" >/dev/null
  d_ip=$(D inspect -f '{{.NetworkSettings.IPAddress}}' netbench-sink)
  engines+=(docker)
fi
# iperf3 ADDR PORT [SIZE]: MB/s (10^6 bytes a second) the receiver saw, or nothing on failure.
iperf() {
  iperf3 -c "$1" -p "$2" -n "${3:-$SIZE}" -J 2>/dev/null | python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)["end"]["sum_received"]
    print("%.0f" % (r["bytes"] / r["seconds"] / 1e6))
except Exception:
    pass'
}
target() { # ENGINE PATH: address and port
  local e=$1 p=$2 ip port
  case $e.$p in
    berth.direct) ip=$b_ip port=5001 ;;
    berth.lo) ip=127.0.0.1 port=${PORTS[0]} ;;
    berth.host) ip=$host_ip port=${PORTS[1]} ;;
    docker.direct) ip=$d_ip port=5001 ;;
    docker.lo) ip=127.0.0.1 port=${PORTS[2]} ;;
    docker.host) ip=$host_ip port=${PORTS[3]} ;;
  esac
  echo "$ip $port"
}
paths=(direct lo)
[ -n "$host_ip" ] && paths+=(host)
# Ready when a small transfer goes through (up to 10 s), which also warms each path up.
for e in "${engines[@]}"; do
  for p in "${paths[@]}"; do
    read -r ip port < <(target "$e" "$p")
    for i in $(seq 50); do
      [ -n "$(iperf "$ip" "$port" 10M)" ] && break
      [ "$i" = 50 ] && { echo "no iperf3 through $e $p ($ip:$port)" >&2; exit 1; }
      sleep 0.2
    done
  done
done
for _ in 1 2 3; do
  for p in "${paths[@]}"; do
    for e in "${engines[@]}"; do
      read -r ip port < <(target "$e" "$p")
      r=$(iperf "$ip" "$port")
      [ -n "$r" ] || { echo "iperf3 through $e $p ($ip:$port) failed" >&2; exit 1; }
      echo "$r" >>"$tmp/tput.$e.$p"
    done
  done
done
printf '%-44s %10s %10s %8s\n' "TCP host->container (iperf3 $SIZE, median of 3)" berth docker ratio
for p in "${paths[@]}"; do
  case $p in
    direct) label="direct to the container address" ;;
    lo) label="published on 127.0.0.1" ;;
    host) label="published on $host_ip ($host_if)" ;;
  esac
  b=$(median <"$tmp/tput.berth.$p")
  printf '%-44s %5s MB/s' "$label" "$b"
  if [ "$have_dockerd" = 1 ]; then
    d=$(median <"$tmp/tput.docker.$p")
    printf ' %5s MB/s %8s' "$d" "$(ratio "$b" "$d")"
  fi
  echo
done
