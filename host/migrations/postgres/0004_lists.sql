-- Lists read a page in one query. A project's live rows are read newest first from an
-- index in that order, without sorting the whole project.
CREATE INDEX volumes_list ON volumes (project_id, deleted, created_at, id);
CREATE INDEX snapshots_list ON snapshots (project_id, deleted, created_at, id);
CREATE INDEX messages_list ON messages (project_id, created_at, id);
-- A volume's live attachments, oldest first, read with the volume.
CREATE INDEX volume_attachments_by_volume ON volume_attachments (volume_id, deleted, created_at, id);

-- A volume's metadata lives on its row as a JSON object, as a snapshot's already does, so
-- a page of volumes needs no lookup per volume. (PostgreSQL's text of this migration:
-- json_object_agg in place of SQLite's json_group_object.)
ALTER TABLE volumes ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
UPDATE volumes SET metadata = COALESCE(
    (SELECT CAST(json_object_agg(key, value) AS text) FROM volume_metadata WHERE volume_id = volumes.id), '{}');
DROP TABLE volume_metadata
