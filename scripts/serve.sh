#!/usr/bin/env bash
# Starts Ashlar on its embedded default: SQLite and one backend `local` (the bundled nfs
# driver on sparse raw files) under ./ashlar-data, API on http://127.0.0.1:8776.
# Extra arguments go to `ashlar serve` (e.g. --config ashlar.toml, --listen, --data-dir).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec cargo run --release --locked -p ashlar -- serve "$@"
