#!/usr/bin/env bash
# Builds the image of the pull benchmark: a Debian bookworm (minbase) root filesystem made with
# debootstrap, split into layers, as an OCI image layout.
#
# Usage (as root):  bench/make-image.sh OUTDIR
#   CACHE     where the debootstrap root filesystem is kept and reused (default
#             /var/cache/berth-bench/bookworm-minbase-<checksum of PACKAGES>)
#   MIRROR    Debian mirror (default: the first deb.debian.org-style URI of apt's sources)
#   PACKAGES  extra packages installed into the rootfs, comma-separated (default: python3, iproute2
#             and curl, which bring the minbase rootfs to 100-200 MB)
#
# Layers, in order (each a tar with numeric owners, sorted names, gzip -n):
#   1. ./usr/lib   2. ./usr/share   3. the rest of ./usr   4. ./var   5. everything else
# The layout has one manifest (application/vnd.oci.image.manifest.v1+json) whose index.json entry
# carries org.opencontainers.image.ref.name=latest; the config's rootfs.diff_ids are the sha256 of
# the uncompressed tars. The OCI layout is rebuilt on every call; the rootfs only when CACHE is empty.
set -euo pipefail

out=${1:?usage: bench/make-image.sh OUTDIR}
PACKAGES=${PACKAGES-python3,iproute2,curl}
CACHE=${CACHE:-/var/cache/berth-bench/bookworm-minbase-$(cksum <<<"$PACKAGES" | cut -d' ' -f1)}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
for c in debootstrap sha256sum python3 gzip tar; do
  command -v "$c" >/dev/null || { echo "missing $c" >&2; exit 2; }
done

if [ -z "${MIRROR:-}" ]; then
  MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]*/debian/?( |$)' | head -1 | tr -d ' ' || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

# --- root filesystem (cached) --------------------------------------------------------------------
if [ ! -e "$CACHE/.complete" ]; then
  rm -rf "$CACHE"
  mkdir -p "$(dirname "$CACHE")"
  echo "debootstrap bookworm (minbase, + $PACKAGES) from $MIRROR into $CACHE" >&2
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$CACHE" "$MIRROR" >&2
  rm -rf "$CACHE"/var/cache/apt/archives/*.deb "$CACHE"/var/lib/apt/lists/*_Packages
  touch "$CACHE/.complete"
fi
echo "rootfs $CACHE: $(du -sm --exclude=./.complete "$CACHE" | cut -f1) MB" >&2

# --- layers --------------------------------------------------------------------------------------
rm -rf "$out"
mkdir -p "$out/blobs/sha256"
work=$(mktemp -d /tmp/berth-make-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

# layer_tar N ARGS...: tar of CACHE with ARGS (paths and excludes) -> $work/N.tar
layer_tar() {
  local n=$1
  shift
  tar -C "$CACHE" --numeric-owner --sort=name --xattrs --anchored --exclude=./.complete \
    -cf "$work/$n.tar" "$@"
}
layer_tar 1 ./usr/lib
layer_tar 2 ./usr/share
layer_tar 3 --exclude=./usr/lib --exclude=./usr/share ./usr
layer_tar 4 ./var
# everything else: every top-level entry but usr and var (dot files included)
mapfile -t rest < <(cd "$CACHE" && find . -mindepth 1 -maxdepth 1 ! -name usr ! -name var ! -name .complete | sort)
layer_tar 5 "${rest[@]}"

layers=()
for n in 1 2 3 4 5; do
  diff=$(sha256sum "$work/$n.tar" | cut -d' ' -f1)
  gzip -n -6 "$work/$n.tar"
  digest=$(sha256sum "$work/$n.tar.gz" | cut -d' ' -f1)
  size=$(stat -c %s "$work/$n.tar.gz")
  mv "$work/$n.tar.gz" "$out/blobs/sha256/$digest"
  layers+=("$digest $size $diff")
done

# --- config, manifest, index ---------------------------------------------------------------------
python3 - "$out" "${layers[@]}" <<'PY'
import hashlib, json, os, sys

out = sys.argv[1]
layers = [l.split() for l in sys.argv[2:]]

def blob(obj):
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)

config = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2024-01-01T00:00:00Z",
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
               "Cmd": ["/bin/bash"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for _, _, d in layers]},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "bench/make-image.sh layer %d" % (i + 1)}
                for i in range(len(layers))],
}
cdigest, csize = blob(config)
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + d, "size": int(s)} for d, s, _ in layers],
}
mdigest, msize = blob(manifest)
index = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
                   "size": msize, "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
PY

compressed=0
for l in "${layers[@]}"; do compressed=$(( compressed + $(cut -d' ' -f2 <<<"$l") )); done
echo "wrote $out: ${#layers[@]} layers, $(( compressed / 1048576 )) MB compressed" >&2
if command -v skopeo >/dev/null; then
  skopeo inspect "oci:$out:latest" >/dev/null && echo "skopeo inspect oci:$out:latest: ok" >&2
fi
