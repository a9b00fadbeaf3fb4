#!/usr/bin/env bash
# Compares pull + unpack of a multi-layer image from a local registry: berth's pull, `skopeo copy`
# to an OCI layout followed by `tar -x` of its layers, and dockerd's `docker pull`.
#
# Usage (as root, from the repository root):  bench/pull.sh [IMAGE_DIR]
#   IMAGE_DIR   an OCI layout tagged `latest` (default /var/cache/berth-bench/image, made with
#               bench/make-image.sh when it has no index.json)
#   ROUNDS      timed rounds per contender (default 3)
#   BERTH_REGISTRY  berth's registry client (default target/release/berth-registry, built with
#               `cargo build --release -p berth-registry`); run as
#               `berth-registry -q pull --root DIR REF`.
#   DOCKER=0    skips dockerd (skipped anyway when /usr/sbin/dockerd or a docker CLI is missing)
#   TMPDIR      where the registry storage, the stores and dockerd's data root go (default
#               /var/tmp: a disk; /dev/shm takes the disk out of the comparison)
#
# The image is pushed once to a private docker-registry (distribution) on 127.0.0.1 with its
# storage in a temporary directory. Every round of every contender starts from an empty store:
# a fresh --root for berth, a fresh layout and rootfs for skopeo + tar, `docker rmi` plus
# `docker image prune -af` for dockerd, then `sync` (untimed) so that no writeback of the previous
# round is pending. The page cache is not dropped: the registry's blobs are read from memory after
# the push, the same for all three. Target: berth >= 1.5 x faster than
# dockerd on the same data.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DOCKER=${DOCKER:-1}
case $ROUNDS in '' | *[!0-9]*) echo "ROUNDS must be a number" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ "${BASH_VERSINFO[0]}" -ge 5 ] || { echo "needs bash >= 5 (EPOCHREALTIME)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
image=${1:-/var/cache/berth-bench/image}

# --- prerequisites -------------------------------------------------------------------------------
missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v curl >/dev/null || missing+=(curl)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
[ -e "$image/index.json" ] || bench/make-image.sh "$image"

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-pull.XXXXXX")
registry_pid=
dockerd_pid=

cleanup() {
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$dockerd_pid" 2>/dev/null || true
  fi
  [ -n "$registry_pid" ] && { kill -9 "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; }
  # whatever dockerd (or its containerd) left mounted under the temporary directory, deepest first
  awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- registry ------------------------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
ref=$host/bench/debian:latest
mkdir -p "$tmp/registry"
cat >"$tmp/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $tmp/registry
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $host
  secret: berth-bench
EOF
docker-registry serve "$tmp/registry.yml" >"$tmp/registry.log" 2>&1 &
registry_pid=$!
for i in $(seq 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$host/v2/" || true)
  [ "$code" = 200 ] && break
  [ "$i" = 100 ] && { echo "the registry did not start:" >&2; cat "$tmp/registry.log" >&2; exit 1; }
  sleep 0.1
done
skopeo copy -q --dest-tls-verify=false "oci:$image:latest" "docker://$ref"

# layer digests (hex) in manifest order, compressed size, uncompressed size
mapfile -t layers < <(python3 - "$image" <<'PY'
import json, sys
root = sys.argv[1]
index = json.load(open(f"{root}/index.json"))
digest = index["manifests"][0]["digest"].split(":")[1]
manifest = json.load(open(f"{root}/blobs/sha256/{digest}"))
for layer in manifest["layers"]:
    print(layer["digest"].split(":")[1])
PY
)
compressed=0
uncompressed=0
for l in "${layers[@]}"; do
  compressed=$(( compressed + $(stat -c %s "$image/blobs/sha256/$l") ))
  uncompressed=$(( uncompressed + $(gzip -dc "$image/blobs/sha256/$l" | wc -c) ))
done

# --- contenders ----------------------------------------------------------------------------------
# Each contender is a script taking the round's fresh directory; prepare scripts make it empty.
cat >"$tmp/skopeo-tar.sh" <<EOF
#!/bin/bash
set -euo pipefail
skopeo copy -q --src-tls-verify=false docker://$ref "oci:\$1/layout:latest"
mkdir "\$1/rootfs"
for l in ${layers[*]}; do
  tar --numeric-owner -xzf "\$1/layout/blobs/sha256/\$l" -C "\$1/rootfs"
done
EOF
chmod +x "$tmp/skopeo-tar.sh"

names=()
declare -A cmds=() preps=()

berth=${BERTH_REGISTRY:-}
if [ -z "$berth" ]; then
  berth=$repo/target/release/berth-registry
  if ! cargo build --release -q -p berth-registry 2>"$tmp/build.log"; then
    echo "building berth-registry failed:" >&2
    grep -m5 -A3 '^error' "$tmp/build.log" >&2 || true
  fi
fi
if [ -x "$berth" ]; then
  cp "$berth" "$tmp/berth-registry" # a rebuild during the benchmark cannot swap the binary under it
  names+=(berth)
  cmds[berth]="$tmp/berth-registry -q pull --root $tmp/round/berth $ref"
  preps[berth]="rm -rf $tmp/round && mkdir -p $tmp/round/berth && sync"
else
  echo "skipping berth: no binary at $berth (cargo build --release -p berth-registry)" >&2
fi

names+=(skopeo+tar)
cmds[skopeo+tar]="$tmp/skopeo-tar.sh $tmp/round"
preps[skopeo+tar]="rm -rf $tmp/round && mkdir -p $tmp/round && sync"

docker_cli=$(command -v docker || true)
if [ "$DOCKER" = 1 ] && [ -x /usr/sbin/dockerd ] && [ -n "$docker_cli" ]; then
  d=$tmp/docker
  mkdir -p "$d/data" "$d/exec"
  /usr/sbin/dockerd --data-root "$d/data" --exec-root "$d/exec" -H "unix://$d/docker.sock" \
    --pidfile "$d/docker.pid" --bridge=none --iptables=false --ip-masq=false \
    --insecure-registry "$host" --storage-driver overlay2 >"$d/dockerd.log" 2>&1 &
  dockerd_pid=$!
  dk="$docker_cli -H unix://$d/docker.sock"
  for i in $(seq 300); do
    $dk version >/dev/null 2>&1 && break
    [ "$i" = 300 ] && { echo "dockerd did not start:" >&2; tail -20 "$d/dockerd.log" >&2; exit 1; }
    sleep 0.1
  done
  names+=(dockerd)
  cmds[dockerd]="$dk pull -q $ref"
  preps[dockerd]="$dk rmi -f $ref >/dev/null 2>&1; $dk image prune -af >/dev/null; sync"
else
  echo "skipping dockerd (DOCKER=$DOCKER; needs /usr/sbin/dockerd and a docker CLI)" >&2
fi

# --- measurement ---------------------------------------------------------------------------------
# measure NAME: ROUNDS timed runs of cmds[NAME], each after preps[NAME]; writes seconds, one a line,
# to $tmp/times.NAME.
measure() {
  local name=$1 t0 t1 i
  if command -v hyperfine >/dev/null; then
    hyperfine --style none --runs "$ROUNDS" --prepare "${preps[$name]}" \
      --export-json "$tmp/hf.json" -n "$name" "${cmds[$name]}" >/dev/null
    python3 -c 'import json, sys; [print(t) for t in json.load(open(sys.argv[1]))["results"][0]["times"]]' \
      "$tmp/hf.json" >"$tmp/times.$name"
  else
    : >"$tmp/times.$name"
    for i in $(seq "$ROUNDS"); do
      bash -c "${preps[$name]}"
      t0=$EPOCHREALTIME
      bash -c "${cmds[$name]}" >/dev/null
      t1=$EPOCHREALTIME
      awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' >>"$tmp/times.$name"
    done
  fi
}
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "image:    $image -> $ref"
echo "          ${#layers[@]} layers, $(( compressed / 1048576 )) MB compressed, $(( uncompressed / 1048576 )) MB uncompressed"
echo "berth:    ${cmds[berth]:-skipped}"
echo "skopeo:   $(skopeo --version), then tar -xzf per layer"
[ -n "${cmds[dockerd]:-}" ] && echo "dockerd:  $(/usr/sbin/dockerd --version) (overlay2), CLI $($docker_cli --version)"
echo "kernel $(uname -r), $(nproc) cpus, load average $(cut -d' ' -f1-3 /proc/loadavg); $ROUNDS rounds each, page cache warm"
echo
for name in "${names[@]}"; do
  measure "$name"
  printf '  %-11s median %7.2f s   (rounds: %s)\n' "$name" "$(median "$tmp/times.$name")" \
    "$(xargs printf '%.2f ' <"$tmp/times.$name")"
done
if [ -n "${cmds[berth]:-}" ]; then
  mb=$(median "$tmp/times.berth")
  ms=$(median "$tmp/times.skopeo+tar")
  echo
  echo "  berth / skopeo+tar: $(ratio "$mb" "$ms")   (skopeo+tar is $(ratio "$ms" "$mb")x berth's time)"
  if [ -n "${cmds[dockerd]:-}" ]; then
    md=$(median "$tmp/times.dockerd")
    verdict=$(awk -v d="$md" -v b="$mb" 'BEGIN { print (b > 0 && d / b >= 1.5) ? "MET" : "NOT MET" }')
    echo "  berth / dockerd:    $(ratio "$mb" "$md")   (dockerd is $(ratio "$md" "$mb")x berth's time; target >= 1.5x: $verdict)"
  fi
elif [ -n "${cmds[dockerd]:-}" ]; then
  echo
  echo "  skopeo+tar / dockerd: $(ratio "$(median "$tmp/times.skopeo+tar")" "$(median "$tmp/times.dockerd")")"
fi
