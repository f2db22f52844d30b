-- Cinder's `backups`: a volume's data in the backup store, one row per backup. A full
-- backup has no parent; an incremental names the backup it builds on (`parent_id`) and
-- that one counts it in `num_dependent_backups`, so it cannot be deleted first.
-- `progress` is the bytes read or written so far by the running create or restore, of
-- `progress_total`. `temp_volume_id` / `temp_snapshot_id` name what a backup of an in-use
-- volume or of a snapshot made to read from, so recovery can remove it after a crash.
-- `metadata` is a JSON object of strings (3.43), as on volumes and snapshots.
CREATE TABLE backups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    volume_id TEXT NOT NULL,
    snapshot_id TEXT,
    status TEXT NOT NULL,
    name TEXT,
    description TEXT,
    availability_zone TEXT,
    container TEXT,
    size BIGINT NOT NULL DEFAULT 0,
    object_count BIGINT NOT NULL DEFAULT 0,
    stored_bytes BIGINT NOT NULL DEFAULT 0,
    fail_reason TEXT,
    parent_id TEXT,
    is_incremental INTEGER NOT NULL DEFAULT 0,
    num_dependent_backups BIGINT NOT NULL DEFAULT 0,
    data_timestamp TEXT,
    host TEXT,
    service TEXT,
    temp_volume_id TEXT,
    temp_snapshot_id TEXT,
    restore_volume_id TEXT,
    progress BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    deleted_at TEXT
);
CREATE INDEX backups_project ON backups (project_id, deleted);
CREATE INDEX backups_volume ON backups (volume_id, deleted);
CREATE INDEX backups_parent ON backups (parent_id, deleted);

-- The status a volume returns to when a backup of it ends (Cinder's `previous_status`):
-- a backup of an in-use volume gives it back in-use.
ALTER TABLE volumes ADD COLUMN previous_status TEXT;
