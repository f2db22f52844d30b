-- Volume transfers (Cinder's `transfers`): an offer of a volume to whichever project
-- presents the key. Only the key's salted hash is kept. Accepted and cancelled offers
-- stay as soft-deleted rows, with `accepted` and `destination_project_id` (3.57).
CREATE TABLE transfers (
    id TEXT PRIMARY KEY,
    volume_id TEXT NOT NULL REFERENCES volumes(id),
    display_name TEXT,
    salt TEXT NOT NULL,
    crypt_hash TEXT NOT NULL,
    expires_at TEXT,
    no_snapshots INTEGER NOT NULL DEFAULT 0,
    source_project_id TEXT NOT NULL,
    destination_project_id TEXT,
    accepted INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    deleted_at TEXT
);
CREATE INDEX transfers_source ON transfers (source_project_id, deleted);
CREATE INDEX transfers_volume ON transfers (volume_id, deleted);

-- Cinder's `services`: each host's scheduler and volume backends (`host@backend`), their
-- heartbeat (`updated_at`) and whether an administrator disabled them for scheduling.
CREATE TABLE services (
    host TEXT NOT NULL,
    "binary" TEXT NOT NULL,
    availability_zone TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    PRIMARY KEY (host, "binary")
);
