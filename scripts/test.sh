#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit tests of every crate, and the
# integration tests that start real `ashlar` processes against real peers (qemu-img, tgtd,
# nfs-ganesha, lvm2 on a loop device, the array simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/setup-peers.sh
source scripts/setup-clients.sh

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# The capability policy must stay testable without a guest: no wasmtime under it, ever.
# (Captured, not piped: in an `if`, a failing `cargo tree` would pass silently.)
policy_deps=$(cargo tree --locked -p ashlar-capabilities --edges normal,build)
if grep -qi wasmtime <<<"$policy_deps"; then
    echo "ashlar-capabilities must not depend on wasmtime" >&2
    exit 1
fi
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --no-fail-fast
else
    cargo test --locked --workspace --no-fail-fast
fi
