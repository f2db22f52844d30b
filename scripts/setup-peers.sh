#!/usr/bin/env bash
# Installs the real storage peers the test suite drives, idempotently: tgt (an iSCSI
# target), nfs-ganesha with rpcbind (an NFSv3 server), libnfs's tools, lvm2, iproute2 (a
# network namespace for the NFS server), PostgreSQL (the second store and the several-host
# tests' coordinator), and qemu-block-extra (qemu's iscsi:// and nfs:// clients), which
# must match the installed qemu-utils and comes from bookworm-backports.
# Sourced by scripts/test.sh; the service itself needs none of these.
set -euo pipefail

peers_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

peers_missing=()
command -v tgtd >/dev/null 2>&1 || peers_missing+=(tgt)
command -v ganesha.nfsd >/dev/null 2>&1 || peers_missing+=(nfs-ganesha)
[ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ] || ls /usr/lib/*/ganesha/libfsalvfs.so >/dev/null 2>&1 \
    || peers_missing+=(nfs-ganesha-vfs)
command -v rpcbind >/dev/null 2>&1 || [ -x /sbin/rpcbind ] || peers_missing+=(rpcbind)
command -v nfs-ls >/dev/null 2>&1 || peers_missing+=(libnfs-utils)
command -v lvcreate >/dev/null 2>&1 || [ -x /sbin/lvcreate ] || peers_missing+=(lvm2)
# The NFS tests run rpcbind and ganesha in a network namespace of their own.
command -v ip >/dev/null 2>&1 || [ -x /sbin/ip ] || peers_missing+=(iproute2)
# The store's second database, and the several-host tests' coordinator.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || peers_missing+=(postgresql)
command -v psql >/dev/null 2>&1 || peers_missing+=(postgresql-client)

if [ "${#peers_missing[@]}" -gt 0 ]; then
    echo "setup: installing test peers: ${peers_missing[*]}" >&2
    peers_as_root apt-get update -qq
    peers_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${peers_missing[@]}" >/dev/null
fi

# qemu-img's block drivers for iscsi:// and nfs:// live in qemu-block-extra, which has to be
# the same version as qemu-utils (from bookworm-backports on these machines).
if ! ls /usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so >/dev/null 2>&1; then
    echo "setup: installing qemu-block-extra (matching qemu-utils)" >&2
    qemu_version="$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)"
    if [[ "$qemu_version" == *bpo* ]] && [ ! -e /etc/apt/sources.list.d/ashlar-backports.sources ]; then
        awk 'BEGIN{RS=""} NR==1{print; exit}' /etc/apt/sources.list.d/debian.sources \
            | sed -E 's/^Suites:.*/Suites: bookworm-backports/' \
            | peers_as_root tee /etc/apt/sources.list.d/ashlar-backports.sources >/dev/null
        peers_as_root apt-get update -qq
    fi
    peers_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "qemu-block-extra=${qemu_version}" >/dev/null
fi
