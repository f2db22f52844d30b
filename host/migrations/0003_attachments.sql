-- Who a volume is attached to (Cinder's volume_attachment): one row per attachment,
-- from reservation to detach. The connection info is what the client was handed.
CREATE TABLE volume_attachments (
    id TEXT PRIMARY KEY,
    volume_id TEXT NOT NULL REFERENCES volumes(id),
    project_id TEXT NOT NULL,
    instance_uuid TEXT,
    attached_host TEXT,
    mountpoint TEXT,
    attach_mode TEXT NOT NULL DEFAULT 'rw',
    attach_status TEXT NOT NULL,
    connector TEXT,
    connection_info TEXT,
    attach_time TEXT,
    detach_time TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX volume_attachments_volume ON volume_attachments (volume_id, deleted);
CREATE INDEX volume_attachments_project ON volume_attachments (project_id, deleted)
