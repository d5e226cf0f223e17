#!/usr/bin/env bash
# Every benchmark in one command, one Markdown table (docs/benchmarks.md).
#
#   sudo scripts/bench.sh           full runs (about 15–20 minutes on 2 cores, most of it builds)
#   sudo scripts/bench.sh --quick   fewer samples and shorter windows (a few minutes after builds)
#
# Needs root: most benches build throw-away network namespaces (documentation addresses only;
# no packet leaves them). Each bench prints `@row | … |` lines (tests/lab/src/bench.rs); this script
# collects them under one header with the date, machine and commit, adds the binary sizes, and
# prints the table on stdout. Progress goes to stderr; each bench's full output is kept in the
# directory named at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ]; then
  echo "bench.sh: needs root (the benches create network namespaces)" >&2
  exit 1
fi
export NF_BENCH_QUICK=$quick
out=$(mktemp -d /tmp/netfailover-bench.XXXXXX)
say() { echo "bench.sh: $*" >&2; }
rows="$out/rows.md"
: > "$rows"
row() { echo "| $1 | $2 | $3 | $4 | $5 | $6 |" >> "$rows"; }

# Binary size: the device binary (the lab is the separate netfailover-lab crate, never in it).
say "building the release binary (device image)"
cargo build --release --bin netfailover 2> "$out/build.log"
size=$(stat -c %s "${CARGO_TARGET_DIR:-target}/release/netfailover")
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
met_size=$([ "$size" -le $((5 * 1048576)) ] && echo yes || echo "**no**")
row "stripped release binary (device image, no lab code)" 1 \
  "$(mib "$size")" "–" "≤ 5 MiB" "$met_size"

# Every [[bench]] of both packages, the engine's criterion bench with short criterion windows.
benches_of() { awk '/^\[\[bench\]\]/ { b = 1; next } b && /^name *=/ { gsub(/[" ]/, "", $0); sub(/name=/, "", $0); print; b = 0 }' "$1"; }
failed=()
run_bench() {
  local label=$1; shift
  say "running $label"
  if ! cargo bench "$@" > "$out/$label.out" 2> "$out/$label.err"; then
    failed+=("$label")
    say "$label FAILED (see $out/$label.err)"
  fi
  grep '^@row ' "$out/$label.out" | sed 's/^@row //' >> "$rows" || true
}
criterion_args=(--warm-up-time 1 --measurement-time 3)
[ "$quick" = 1 ] && criterion_args=(--warm-up-time 1 --measurement-time 1)
for b in $(benches_of actors/Cargo.toml); do
  run_bench "actors-$b" -p netfailover-actors --bench "$b" -- "${criterion_args[@]}"
done
for b in $(benches_of Cargo.toml); do
  run_bench "$b" -p netfailover --bench "$b"
done

commit=$(git rev-parse --short HEAD)
[ -n "$(git status --porcelain --untracked-files=no)" ] && commit="$commit (with uncommitted changes)"
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC by \`scripts/bench.sh$([ "$quick" = 1 ] && echo ' --quick')\`, commit $commit;"
echo "$(nproc) cores (${cpu:-unknown CPU}), $(free -g | awk '/^Mem:/ { print $2 }') GiB, Linux $(uname -r), $(rustc -V | cut -d' ' -f1-2)."
echo
echo "| measure | runs | p50 (or value) | p99 | target | met |"
echo "|---|---|---|---|---|---|"
cat "$rows"
echo
say "full outputs in $out"
if [ "${#failed[@]}" -gt 0 ]; then
  say "benches that failed: ${failed[*]}"
  exit 1
fi
