#!/usr/bin/env bash
# Installs what building, running and testing Ashlar needs, idempotently: the wasm32-wasip2
# Rust target (drivers are WebAssembly components), qemu-utils (the nfs driver runs
# qemu-img).
# Sourced by scripts/serve.sh and scripts/test.sh.
set -euo pipefail

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2
fi

if ! command -v qemu-img >/dev/null 2>&1; then
    echo "setup: installing qemu-utils" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-utils >/dev/null
fi

# One shared target directory outside the checkout, so repeated runs and clones reuse builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ashlar-target}"
