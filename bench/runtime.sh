#!/usr/bin/env bash
# Compares the start-up cost of berth-runtime with runc on one busybox bundle running `true`.
#
# Usage (as root, from the repository root):  bench/runtime.sh [N]
#   N        iterations per runtime (default 100; or env N)
#   WARMUP   warm-up runs per runtime, not counted (default 5)
#   SPLIT    1 (default) also times create / start / delete separately; 0 skips that
#
# Main figure: wall time of `RUNTIME run` (fork, namespaces, mounts, pivot_root, exec of `true`,
# its exit, cleanup of state and cgroup). The two runtimes alternate run by run, so that drift of
# the machine (frequency, caches, other load) hits both equally. Target: berth <= 0.5 x runc.
#
# Both runtimes get the very same config.json: the default of `berth-runtime spec` (made by
# scripts/busybox-bundle) with only process.args changed to ["true"]. That spec has no
# linux.cgroupsPath, so berth-runtime uses /berth-runtime/<id> and runc its own default (/<id>);
# both create, join and remove a cgroup on every run. runc 1.1 (Debian 12) accepts this default
# spec unchanged (cgroup v1 hybrid host), so nothing else is adjusted for it.
#
# Timing uses bash's $EPOCHREALTIME (microseconds, no fork); each run is bounded by `timeout 10`,
# whose own fork+exec is in every measured run; its cost is printed as the "harness" baseline.
set -euo pipefail

N=${1:-${N:-100}}
WARMUP=${WARMUP:-5}
SPLIT=${SPLIT:-1}
case $N$WARMUP in *[!0-9]*) echo "N and WARMUP must be numbers" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ "${BASH_VERSINFO[0]}" -ge 5 ] || { echo "needs bash >= 5 (EPOCHREALTIME)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# --- prerequisites -------------------------------------------------------------------------------
if ! command -v runc >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc
fi
if [ ! -x /bin/busybox ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi
cargo build --release -q -p berth-runtime
RUNC=$(command -v runc)

# --- temp dir, bundle, cleanup -------------------------------------------------------------------
tmp=$(mktemp -d /tmp/berth-bench.XXXXXX)
bundle=$tmp/bundle
berth_root=$tmp/state-berth
runc_root=$tmp/state-runc
mkdir -p "$berth_root" "$runc_root"
# a copy, so that a rebuild during the benchmark cannot swap the binary under it
BERTH=$tmp/berth-runtime
cp "$repo/target/release/berth-runtime" "$BERTH"

cleanup() {
  local id
  for id in $("$BERTH" --root "$berth_root" list -q 2>/dev/null); do
    timeout 10 "$BERTH" --root "$berth_root" delete --force "$id" >/dev/null 2>&1 || true
  done
  for id in $("$RUNC" --root "$runc_root" list -q 2>/dev/null); do
    timeout 10 "$RUNC" --root "$runc_root" delete --force "$id" >/dev/null 2>&1 || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BERTH_RUNTIME=$BERTH scripts/busybox-bundle "$bundle" >/dev/null
# process.args: ["sh"] -> ["true"] (GNU sed -z: the array spans several lines)
sed -i -z 's/"args": *\[[^]]*\]/"args": ["true"]/' "$bundle/config.json"
grep -q '"args": \["true"\]' "$bundle/config.json" || { echo "could not set args in config.json" >&2; exit 1; }

# --- measurement helpers -------------------------------------------------------------------------

declare -A fails=()
errlog=$tmp/err
# timed NAME FILE CMD...: runs CMD bounded and silent, appends its wall time (us) to FILE on success,
# counts and reports failures (first stderr line) otherwise.
timed() {
  local name=$1 file=$2 t0 t1 rc=0
  shift 2
  t0=$EPOCHREALTIME
  timeout 10 "$@" </dev/null >/dev/null 2>"$errlog" || rc=$?
  t1=$EPOCHREALTIME
  if [ "$rc" = 0 ]; then
    echo $(( ${t1//[!0-9]/} - ${t0//[!0-9]/} )) >>"$file"
  else
    fails[$name]=$(( ${fails[$name]:-0} + 1 ))
    [ "${fails[$name]}" -le 3 ] && echo "FAIL $name (exit $rc): $(head -c 400 "$errlog" | tr '\n' ' ')" >&2
  fi
  return 0
}

# wait_stopped RUNTIME ROOT ID: polls `state` until the container is stopped (at most 10 s).
wait_stopped() {
  local i
  for i in $(seq 1000); do
    # grep without -q reads all of state's output: berth-runtime aborts on a closed stdout (EPIPE)
    "$1" --root "$2" state "$3" 2>/dev/null | grep '"status": *"stopped"' >/dev/null && return 0
    sleep 0.01
  done
  echo "container $3 never stopped" >&2
}

# stats FILE -> "median p10 p90 n" in ms (nearest rank)
stats() {
  sort -n "$1" | awk '{ v[NR] = $1 }
    function at(p,  k) { k = int(p * NR + 0.999999); if (k < 1) k = 1; return v[k] / 1000 }
    END { if (NR == 0) { print "- - - 0"; exit }
          m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%.2f %.2f %.2f %d\n", m / 1000, at(0.10), at(0.90), NR }'
}
row() { # row LABEL FILE
  local s
  read -r -a s <<<"$(stats "$2")"
  printf '  %-22s median %7s ms   p10 %7s ms   p90 %7s ms   (n=%s)\n' "$1" "${s[0]}" "${s[1]}" "${s[2]}" "${s[3]}"
}
median() { stats "$1" | cut -d' ' -f1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# --- warm-up -------------------------------------------------------------------------------------
for i in $(seq "$WARMUP"); do
  timed warmup-berth /dev/null "$BERTH" --root "$berth_root" run --bundle "$bundle" "w-b-$$-$i"
  timed warmup-runc /dev/null "$RUNC" --root "$runc_root" run --bundle "$bundle" "w-r-$$-$i"
done

# --- run: alternating ----------------------------------------------------------------------------
echo "berth-runtime: $repo/target/release/berth-runtime ($(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?'))"
echo "runc:          $RUNC ($("$RUNC" --version | head -1))"
echo "kernel $(uname -r), $(nproc) cpus, load average $(cut -d' ' -f1-3 /proc/loadavg) (should be near 0)"
echo "N=$N, warm-up $WARMUP; bundle: busybox, args [\"true\"]"
echo

for i in $(seq "$N"); do
  timed true-harness "$tmp/harness" true
  timed berth-run "$tmp/berth-run" "$BERTH" --root "$berth_root" run --bundle "$bundle" "b-$$-$i"
  timed runc-run "$tmp/runc-run" "$RUNC" --root "$runc_root" run --bundle "$bundle" "r-$$-$i"
done

echo "run (wall time of \`RUNTIME run\` of true, including \`timeout 10\`):"
row "berth-runtime run" "$tmp/berth-run"
row "runc run" "$tmp/runc-run"
row "harness (timeout true)" "$tmp/harness"
mb=$(median "$tmp/berth-run"); mr=$(median "$tmp/runc-run"); mh=$(median "$tmp/harness")
r=$(ratio "$mb" "$mr")
rn=$(awk -v b="$mb" -v r="$mr" -v h="$mh" 'BEGIN { if (r - h > 0) printf "%.2f", (b - h) / (r - h); else print "-" }')
verdict=$(awk -v r="$r" 'BEGIN { print (r != "-" && r <= 0.5) ? "MET" : "NOT MET" }')
echo "  ratio berth/runc (medians): $r   (harness subtracted: $rn)   target <= 0.50: $verdict"

# --- create / start / delete split ---------------------------------------------------------------
if [ "$SPLIT" = 1 ]; then
  for i in $(seq "$N"); do
    for rt in berth runc; do
      if [ $rt = berth ]; then bin=$BERTH root=$berth_root; else bin=$RUNC root=$runc_root; fi
      id="s-${rt:0:1}-$$-$i"
      timed "$rt-create" "$tmp/$rt-create" "$bin" --root "$root" create --bundle "$bundle" "$id"
      timed "$rt-start" "$tmp/$rt-start" "$bin" --root "$root" start "$id"
      wait_stopped "$bin" "$root" "$id" # not timed
      timed "$rt-delete" "$tmp/$rt-delete" "$bin" --root "$root" delete "$id"
    done
  done
  echo
  echo "create / start / delete (each timed alone; the wait for \`stopped\` in between is not):"
  for phase in create start delete; do
    row "berth-runtime $phase" "$tmp/berth-$phase"
    row "runc $phase" "$tmp/runc-$phase"
    echo "  ratio berth/runc $phase: $(ratio "$(median "$tmp/berth-$phase")" "$(median "$tmp/runc-$phase")")"
  done
fi

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ ${#fails[@]} -gt 0 ]; then
  echo
  echo "failures:"
  for k in "${!fails[@]}"; do echo "  $k: ${fails[$k]}"; done
  exit 1
fi
