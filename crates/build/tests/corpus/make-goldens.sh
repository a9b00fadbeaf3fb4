#!/usr/bin/env bash
# Makes golden.json for every case of the build corpus with Docker's classic builder.
#
# Starts a dockerd of its own (sockets, data and state under /tmp, no bridge, no iptables, no
# sysctl changes, nothing on /var/run/docker.sock), imports the busybox base image made exactly
# like the tests' fixture (berth_tests::busybox_rootfs, through the busybox-rootfs bin), builds
# each case that is neither buildkit_only nor expect_error with `DOCKER_BUILDKIT=0 docker build`,
# saves the image and writes its summary (the image-summary bin) as golden.json. For a case with
# expect_error it records the error text the build printed. buildkit_only cases are left as they
# are (their golden.json, if any, is hand-written). dockerd is stopped and its directories removed
# on exit, also on failure or Ctrl-C.
#
# Usage: crates/build/tests/corpus/make-goldens.sh [CASE...]   (as root; default: every case)
# Needs: dockerd (Debian's docker.io), a docker CLI, jq, tar, busybox-static, cargo.
# CARGO_TARGET_DIR is honoured for building the two bins.
set -euo pipefail

CORPUS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$CORPUS/../../../.." && pwd)
NAME=golden-docker
DATA_ROOT=/tmp/$NAME
EXEC_ROOT=/tmp/golden-exec
SOCK=/tmp/$NAME.sock
PIDFILE=/tmp/$NAME.pid
WORK=$(mktemp -d /tmp/make-goldens.XXXXXX)
# The base image's config, as Docker Hub's busybox has it.
BASE_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
BASE_CMD='["sh"]'

export DOCKER_HOST=unix://$SOCK
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export DOCKER_BUILDKIT=0

for tool in dockerd docker jq tar cargo; do
    command -v "$tool" >/dev/null || { echo "make-goldens: $tool is missing" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "make-goldens: dockerd needs root" >&2; exit 1; }
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "make-goldens: a dockerd of ours is already running (pid $(cat "$PIDFILE")); stop it first" >&2
    exit 1
fi

DOCKERD_PID=
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e +o pipefail
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        kill "$DOCKERD_PID"
        for _ in $(seq 1 60); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$DOCKERD_PID" 2>/dev/null && kill -9 "$DOCKERD_PID"
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    # Anything dockerd left mounted under its directories (deepest first), then the directories.
    for root in "$DATA_ROOT" "$EXEC_ROOT"; do
        findmnt -rn -o TARGET | grep -E "^$root(/|$)" | sort -r | while read -r m; do
            umount -l "$m"
        done
    done
    rm -rf "$DATA_ROOT" "$EXEC_ROOT" "$SOCK" "$PIDFILE" "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ the bins
echo "== building the image-summary and busybox-rootfs bins" >&2
(cd "$REPO" && cargo build -q -p berth-tests --bin image-summary --bin busybox-rootfs)
BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug
SUMMARY=$BIN/image-summary

# ------------------------------------------------------------------ dockerd
rm -rf "$DATA_ROOT" "$EXEC_ROOT" "$SOCK"
echo '{}' >"$WORK/daemon.json"
dockerd \
    --config-file "$WORK/daemon.json" \
    --data-root "$DATA_ROOT" \
    --exec-root "$EXEC_ROOT" \
    --pidfile "$PIDFILE" \
    -H "unix://$SOCK" \
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
    --storage-driver=overlay2 \
    >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { cat "$WORK/dockerd.log" >&2; exit 1; }
    sleep 0.5
done
VERSION=$(docker version --format '{{.Server.Version}}')
BUILDER="dockerd ${VERSION%%+*} classic"
echo "== $BUILDER on $SOCK" >&2

# ------------------------------------------------------------------ busybox:latest
"$BIN/busybox-rootfs" "$WORK/rootfs"
tar -C "$WORK/rootfs" -cf "$WORK/busybox.tar" .
docker import --change "ENV $BASE_ENV" --change "CMD $BASE_CMD" "$WORK/busybox.tar" busybox:latest >/dev/null

# ------------------------------------------------------------------ the cases
# The error a failed build printed: stderr without the CLI's deprecation notice and progress.
error_text() {
    awk '
        NR == 1 && /^DEPRECATED:/ { skip = 1 }
        skip { if ($0 == "") skip = 0; next }
        /^Sending build context/ || /^Step [0-9]+\/[0-9]+ :/ || /^ ---> / { next }
        /^Removing intermediate container/ || /^\[WARNING\]/ { next }
        { print }
    ' "$1" | tr -d '\r'
}

if [ $# -gt 0 ]; then
    CASES=("$@")
else
    CASES=()
    for dir in "$CORPUS"/*/; do
        [ -f "$dir/case.json" ] && CASES+=("$(basename "$dir")")
    done
fi

failed=()
built=0 errors=0 skipped=0
for name in "${CASES[@]}"; do
    dir=$CORPUS/$name
    meta=$dir/case.json
    if [ "$(jq -r '.buildkit_only // false' "$meta")" = true ]; then
        echo "-- $name: buildkit_only, left as it is" >&2
        skipped=$((skipped + 1))
        continue
    fi
    args=(build --no-cache --force-rm -f "$dir/$(jq -r '.dockerfile // "Dockerfile"' "$meta")" -t "corpus/$name:latest")
    while IFS= read -r kv; do args+=(--build-arg "$kv"); done < <(jq -r '.buildargs // {} | to_entries[] | "\(.key)=\(.value)"' "$meta")
    while IFS= read -r kv; do args+=(--label "$kv"); done < <(jq -r '.labels // {} | to_entries[] | "\(.key)=\(.value)"' "$meta")
    target=$(jq -r '.target // empty' "$meta")
    [ -n "$target" ] && args+=(--target "$target")
    expect_error=$(jq -r '.expect_error // empty' "$meta")

    if docker "${args[@]}" "$dir" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
        if [ -n "$expect_error" ]; then
            echo "!! $name: built, but the case expects an error" >&2
            failed+=("$name")
            continue
        fi
        docker save -o "$WORK/$name.tar" "corpus/$name:latest"
        "$SUMMARY" --golden "$BUILDER" "$WORK/$name.tar" >"$dir/golden.json"
        docker rmi -f "corpus/$name:latest" >/dev/null
        rm -f "$WORK/$name.tar"
        echo "ok $name" >&2
        built=$((built + 1))
    else
        if [ -z "$expect_error" ]; then
            echo "!! $name: the build failed:" >&2
            cat "$WORK/$name.out" "$WORK/$name.err" >&2
            failed+=("$name")
            continue
        fi
        error_text "$WORK/$name.err" >"$WORK/$name.error"
        if ! grep -qF -- "$expect_error" "$WORK/$name.error"; then
            echo "!! $name: the error does not contain \"$expect_error\":" >&2
            cat "$WORK/$name.error" >&2
            failed+=("$name")
        fi
        "$SUMMARY" --error "$BUILDER" "$WORK/$name.error" >"$dir/golden.json"
        echo "ok $name (error: $(head -1 "$WORK/$name.error"))" >&2
        errors=$((errors + 1))
    fi
done

echo "== $built images, $errors errors recorded, $skipped buildkit_only left as they are" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "== FAILED: ${failed[*]}" >&2
    exit 1
fi
