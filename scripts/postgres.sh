#!/usr/bin/env bash
# A private PostgreSQL 15 for the tests, as DESIGN.md says: initdb + pg_ctl on 127.0.0.1 at
# a port of its own, trust authentication for the `ashlar` role, fsync off. initdb refuses
# to run as root, so as root the cluster belongs to the `postgres` user the Debian package
# made. Sourced by scripts/test.sh.

postgres_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    done
    echo "postgres: no initdb under /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2
    return 1
}

postgres_as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# postgres_start DIR PORT: a new cluster in DIR (made, or emptied), serving on PORT.
postgres_start() {
    local dir="$1" port="$2" bin
    bin="$(postgres_bin)"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    postgres_as_owner "$bin/initdb" -D "$dir/data" -U ashlar --auth=trust --no-sync >/dev/null
    postgres_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o \
        "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400" \
        start >/dev/null
}

# postgres_stop DIR: stops the cluster in DIR, at once.
postgres_stop() {
    local dir="$1" bin
    bin="$(postgres_bin)" || return 0
    [ -d "$dir/data" ] && postgres_as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
    return 0
}
