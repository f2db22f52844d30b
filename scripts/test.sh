#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit tests of every crate, and the
# integration tests that start real `ashlar` processes against real peers (qemu-img, tgtd,
# nfs-ganesha, lvm2 on a loop device, the array simulator, PostgreSQL, Glance, componentize-py
# for the Python drivers); then the store's tests and the API's modules once more on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/setup-peers.sh
source scripts/setup-clients.sh
source scripts/setup-glance.sh
source scripts/setup-python-sdk.sh
source scripts/postgres.sh

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# The capability policy must stay testable without a guest: no wasmtime under it, ever.
# (Captured, not piped: in an `if`, a failing `cargo tree` would pass silently.)
policy_deps=$(cargo tree --locked -p ashlar-capabilities --edges normal,build)
if grep -qi wasmtime <<<"$policy_deps"; then
    echo "ashlar-capabilities must not depend on wasmtime" >&2
    exit 1
fi
# One PostgreSQL for the whole run: the several-host tests make their databases on it, and
# the store's tests and the API's modules run on it a second time (each test a database
# of its own), so the same queries and migrations are checked on both stores.
pg_dir="$(mktemp -d)"
pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
postgres_start "$pg_dir" "$pg_port"
trap 'postgres_stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
export ASHLAR_TEST_POSTGRES_SERVER="postgres://ashlar@127.0.0.1:$pg_port/postgres"
on_postgres='package(ashlar) & (test(/^db::/) | test(/^(volumes|attach|scheduling|conflicts|lists|quotas|types|services|manage|migrate|backends)::/))'
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --no-fail-fast
    ASHLAR_TEST_POSTGRES="$ASHLAR_TEST_POSTGRES_SERVER" \
        cargo nextest run --locked --workspace --no-fail-fast -E "$on_postgres"
else
    cargo test --locked --workspace --no-fail-fast
fi
