#!/usr/bin/env bash
# netfailover side by side with NetworkManager 1.42, one Markdown table (README, "Compared with
# NetworkManager"; docs/benchmarks.md).
#
#   sudo scripts/compare-nm.sh            n = 20 per series, 60 s idle window (about 25 minutes)
#   sudo scripts/compare-nm.sh --quick    n = 8, 20 s idle window (about 8 minutes)
#   sudo scripts/compare-nm.sh --runs N --idle-secs S
#
# Needs root and Debian's network-manager, dbus and nftables packages. NetworkManager runs in a
# throw-away network namespace with its own D-Bus and its own /run/NetworkManager and
# /var/lib/NetworkManager (bind mounts private to it): the host's network and NetworkManager are
# not touched. Documentation addresses only; no packet leaves the namespaces. Everything is
# removed at the end, on error and on Ctrl-C (tests/lab/src/compare/).
#
# Builds the lab in release (`cargo build --release -p netfailover-lab`: the daemon it runs is
# the product built from this tree, its release profile), runs `netfailover-lab --compare-nm`,
# and prints the heading and the table on stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

lab_args=(--compare-nm)
mode=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) lab_args+=(--quick); mode=" --quick" ;;
    --runs|--idle-secs)
      [ $# -ge 2 ] || { echo "compare-nm.sh: $1 needs a value" >&2; exit 2; }
      lab_args+=("$1" "$2"); mode="$mode $1 $2"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "compare-nm.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" != 0 ]; then
  echo "compare-nm.sh: needs root (network namespaces, NetworkManager in one of them)" >&2
  exit 1
fi
missing=()
for tool in NetworkManager:network-manager nmcli:network-manager dbus-daemon:dbus nft:nftables ip:iproute2; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "compare-nm.sh: missing programs; install: apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "compare-nm.sh: building the lab in release (the daemon built from this tree)" >&2
cargo build --release -p netfailover-lab >&2
lab="${CARGO_TARGET_DIR:-target}/release/netfailover-lab"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit (with uncommitted changes)"
fi
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
out=$(mktemp /tmp/netfailover-compare.XXXXXX)
trap 'rm -f "$out"' EXIT
echo "compare-nm.sh: running $lab ${lab_args[*]}" >&2
status=0
"$lab" "${lab_args[@]}" > "$out" || status=$?

echo "Measured by \`scripts/compare-nm.sh$mode\`, commit $commit; ${cpu:-unknown CPU}, $(rustc -V 2>/dev/null | cut -d' ' -f1-2)."
cat "$out"
if [ "$status" != 0 ]; then
  echo "compare-nm.sh: the comparison did not complete (exit $status); see the notes above and stderr" >&2
fi
exit "$status"
