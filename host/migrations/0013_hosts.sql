-- Several hosts on one database. A job names the backend that must run it (`backend`, as
-- the scheduler names it: `HOST@BACKEND`, or `CLUSTER@BACKEND` for a backend several hosts
-- run together); NULL means any host may (a create not yet scheduled, a backup's delete).
ALTER TABLE jobs ADD COLUMN backend TEXT;
CREATE INDEX jobs_claim ON jobs (state, backend, created_at);

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
