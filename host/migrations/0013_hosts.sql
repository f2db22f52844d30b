-- Several hosts on one database. A job names the backend that must run it (`backend`, as
-- the scheduler names it: `HOST@BACKEND`, or `CLUSTER@BACKEND` for a backend several hosts
-- run together); NULL means any host may (a create not yet scheduled, a backup's delete).
ALTER TABLE jobs ADD COLUMN backend TEXT;
CREATE INDEX jobs_claim ON jobs (state, backend, created_at);

-- The cluster a host's volume service runs its backend in (`CLUSTER@BACKEND`, Cinder's
-- `cluster_name`), shown by os-services from 3.7.
ALTER TABLE services ADD COLUMN cluster TEXT;

-- Each backend's last pool stats, written by the host that polled them, read by every
-- host's scheduler.
CREATE TABLE backend_stats (
    backend TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    stats TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Capacity placements took from a pool since its backend's stats were last written
-- (Cinder's consume_from_volume, shared by every host's scheduler): gigabytes provisioned
-- and, for thick volumes, gigabytes of free space. A poll's write clears its backend's.
CREATE TABLE pool_consumption (
    backend TEXT NOT NULL,
    pool TEXT NOT NULL,
    provisioned_gb BIGINT NOT NULL DEFAULT 0,
    free_gb BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (backend, pool)
);

-- Which host a plugin event happened on.
ALTER TABLE plugin_events ADD COLUMN host TEXT;

-- A driver swap of a backend several hosts run (`CLUSTER@BACKEND`): every live host of the
-- cluster loads, probes and switches; one that fails, then or in its probation, rolls the
-- swap back for all (`state` open → rolled-back, or committed once every host passed).
CREATE TABLE cluster_swaps (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    part TEXT NOT NULL,
    wasm TEXT NOT NULL,
    manifest TEXT,
    probation_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX cluster_swaps_state ON cluster_swaps (state, backend);

-- Each host's part in a cluster swap: swapped, refused, passed (its probation), or
-- rolled-back.
CREATE TABLE cluster_swap_hosts (
    swap_id TEXT NOT NULL REFERENCES cluster_swaps(id),
    host TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (swap_id, host)
);
