#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit tests of every crate, and the
# integration tests that start real `ashlar` processes against real peers (qemu-img, tgtd,
# nfs-ganesha, lvm2 on a loop device, the array simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/setup-peers.sh

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --no-fail-fast
else
    cargo test --locked --workspace --no-fail-fast
fi
