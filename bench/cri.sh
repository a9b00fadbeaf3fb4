#!/usr/bin/env bash
# berthd's CRI against containerd 1.6's CRI plugin (Debian's containerd, with runc), driven by
# the same CRI client (crates/cri/examples/cri_bench.rs) with the same CNI conflist (Debian's
# bridge + host-local + portmap; each daemon its own bridge and subnet):
#   - RunPodSandbox + CreateContainer + StartContainer of one pod (median of ROUNDS);
#   - 20 pods started in parallel (wall time for all 20).
# containerd's pause image is busybox sleeping, imported as registry.k8s.io/pause:3.6 (no
# network here to pull the real one); berth needs none (berth-init --pause).
# Target (issue 16): <= 0.3 x containerd.
#
# Usage (as root, from the repository root): bench/cri.sh    (ROUNDS=N, default 7; ONLY=berth
# to time berthd alone)
set -euo pipefail
ROUNDS=${ROUNDS:-7}
PARALLEL=${PARALLEL:-20}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
DOCKER=${DOCKER_CLI:-$(command -v docker || echo /usr/local/bin/docker)}
[ -x "$DOCKER" ] || { echo "no docker CLI" >&2; exit 2; }
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || [ ! -x /usr/lib/cni/portmap ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc \
    containernetworking-plugins >/dev/null
fi
cargo build --release -q -p berth-daemon -p berth-monitor -p berth-init -p berth-cli
cargo build --release -q -p berth-cri --example cri_bench
bin=$repo/target/release
client=$bin/examples/cri_bench

# Short: the monitor sockets under the exec root must fit in 108 bytes.
tmp=$(mktemp -d /run/bcri.XXXXXX)
pids=()
cleanup() {
  stop_pids "${pids[@]}"
  # containerd's shims outlive it: their tasks and mounts go with them.
  pkill -f "containerd-shim-runc-v2 .*$tmp" 2>/dev/null || true
  umount_under "$tmp"
  rm -rf "$tmp"
  for l in bcribench0 bcribench1 bbench0; do ip link del "$l" 2>/dev/null || true; done
  nft delete table ip berth_bench 2>/dev/null || true
  nft delete table ip6 berth_bench 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

conflist() { # DIR BRIDGE THIRD-OCTET
  mkdir -p "$1"
  cat >"$1/10-bench.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "bench", "plugins": [
  {"type": "bridge", "bridge": "$2", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$tmp/host-local-$2", "subnet": "10.217.$3.0/24",
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
}
conflist "$tmp/net-berth" bcribench0 0
conflist "$tmp/net-containerd" bcribench1 1

busybox_tar "$tmp"
"$bin/berthd" -H "unix://$tmp/berth.sock" --data-root "$tmp/berth-data" --exec-root "$tmp/b" \
  --bridge bbench0 --nft-table berth_bench --config-file /nonexistent -l "${LOG_LEVEL:-warn}" \
  --cri-socket "unix://$tmp/berth-cri.sock" --cni-conf-dir "$tmp/net-berth" >"$tmp/berthd.log" 2>&1 &
pids+=($!)
wait_for "$tmp/berth.sock"
B() { DOCKER_HOST=unix://$tmp/berth.sock "$DOCKER" "$@"; }
B import "$tmp/busybox.tar" bb:bench >/dev/null
B import --change 'ENTRYPOINT ["/bin/sleep", "2147483647"]' "$tmp/busybox.tar" registry.k8s.io/pause:3.6 >/dev/null
B save -o "$tmp/images.tar" bb:bench registry.k8s.io/pause:3.6

if [ "${ONLY:-}" = berth ]; then
  "$client" "$tmp/berth-cri.sock" bb:bench "$ROUNDS" "$PARALLEL"
  [ -z "${KEEP_LOG:-}" ] || cp "$tmp/berthd.log" "$KEEP_LOG"
  exit 0
fi
cat >"$tmp/containerd.toml" <<TOML
version = 2
root = "$tmp/containerd-root"
state = "$tmp/containerd-state"
[grpc]
  address = "$tmp/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$tmp/net-containerd"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
TOML
containerd --config "$tmp/containerd.toml" >"$tmp/containerd.log" 2>&1 &
pids+=($!)
for i in $(seq 300); do
  ctr -a "$tmp/containerd.sock" version >/dev/null 2>&1 && break
  [ "$i" = 300 ] && { echo "containerd did not start" >&2; tail "$tmp/containerd.log" >&2; exit 1; }
  sleep 0.1
done
ctr -a "$tmp/containerd.sock" -n k8s.io images import "$tmp/images.tar" >/dev/null

echo "berthd $("$bin/berthd" --version | awk '{print $2}') vs $(containerd --version | awk '{print $1, $3}')"
echo "$(nproc) cpus, kernel $(uname -r), $ROUNDS rounds, $PARALLEL in parallel"
echo
b=$("$client" "$tmp/berth-cri.sock" bb:bench "$ROUNDS" "$PARALLEL")
c=$("$client" "$tmp/containerd.sock" bb:bench "$ROUNDS" "$PARALLEL")
echo "berth: $(grep phases <<<"$b")"
echo "containerd: $(grep phases <<<"$c")"
field() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }
b1=$(field one_pod_ms "$b"); c1=$(field one_pod_ms "$c")
bp=$(field "parallel_${PARALLEL}_ms" "$b"); cp=$(field "parallel_${PARALLEL}_ms" "$c")
printf '%-44s berth %8.1f ms   containerd %8.1f ms   ratio %s (target <= 0.30)\n' \
  "run pod + create + start one container" "$b1" "$c1" "$(ratio "$b1" "$c1")"
printf '%-44s berth %8.1f ms   containerd %8.1f ms   ratio %s (target <= 0.30)\n' \
  "$PARALLEL pods in parallel" "$bp" "$cp" "$(ratio "$bp" "$cp")"
