#!/usr/bin/env bash
# Builds the Debian package of the device binary with cargo-deb (`[package.metadata.deb]` in
# Cargo.toml): the release build (no lab code: the lab is the separate netfailover-lab crate),
# both systemd units from contrib/, examples/boot/ and the docs under /usr/share/doc.
#
#   scripts/package.sh            prints the path of the .deb it built (target/debian/)
#
# Needs cargo-deb (`cargo install cargo-deb --locked`) and dpkg-dev (dpkg-shlibdeps for the
# library dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  "") ;;
  *) echo "package.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "package.sh: cargo-deb is missing; install it with: cargo install cargo-deb --locked" >&2
  exit 1
fi
# cargo-deb prints the package's path as its last line on stdout.
cargo deb -p netfailover | tail -n 1
