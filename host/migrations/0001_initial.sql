-- Ashlar's schema. Plain SQL that SQLite and PostgreSQL both accept.
CREATE TABLE volume_types (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    is_public INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);

CREATE TABLE volume_type_extra_specs (
    volume_type_id TEXT NOT NULL REFERENCES volume_types(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (volume_type_id, key)
);

CREATE TABLE volumes (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT,
    description TEXT,
    size BIGINT NOT NULL,
    status TEXT NOT NULL,
    attach_status TEXT NOT NULL DEFAULT 'detached',
    availability_zone TEXT NOT NULL,
    volume_type_id TEXT REFERENCES volume_types(id),
    host TEXT,
    provider_location TEXT,
    provider_auth TEXT,
    snapshot_id TEXT,
    source_volid TEXT,
    bootable INTEGER NOT NULL DEFAULT 0,
    multiattach INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    launched_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    deleted_at TEXT
);
CREATE INDEX volumes_project ON volumes (project_id, deleted);

CREATE TABLE volume_metadata (
    volume_id TEXT NOT NULL REFERENCES volumes(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (volume_id, key)
);

CREATE TABLE snapshots (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    volume_id TEXT NOT NULL REFERENCES volumes(id),
    name TEXT,
    description TEXT,
    status TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '0%',
    volume_size BIGINT NOT NULL,
    provider_location TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    deleted_at TEXT
);
CREATE INDEX snapshots_volume ON snapshots (volume_id, deleted);

-- Durable work: written with the row it acts on, claimed by a volume manager, finished or
-- reverted after a crash (Cinder's cleanable workers).
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX jobs_state ON jobs (state);

-- Cinder's user messages: why an asynchronous operation failed.
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    request_id TEXT,
    resource_type TEXT NOT NULL,
    resource_uuid TEXT,
    event_id TEXT NOT NULL,
    message_level TEXT NOT NULL,
    user_message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX messages_project ON messages (project_id);
