-- A volume's revision changes whenever anything its view shows changes: its row, its
-- attachments, its type's name. A list reads ids and revisions first and renders only
-- the volumes it has not rendered at that revision. Whatever a volume's view comes to
-- show later must bump the revision here too.
ALTER TABLE volumes ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER volumes_revision AFTER UPDATE ON volumes
WHEN NEW.revision = OLD.revision
BEGIN
    UPDATE volumes SET revision = OLD.revision + 1 WHERE id = NEW.id;
END;

CREATE TRIGGER volume_attachments_added AFTER INSERT ON volume_attachments
BEGIN
    UPDATE volumes SET revision = revision + 1 WHERE id = NEW.volume_id;
END;

CREATE TRIGGER volume_attachments_changed AFTER UPDATE ON volume_attachments
BEGIN
    UPDATE volumes SET revision = revision + 1 WHERE id IN (OLD.volume_id, NEW.volume_id);
END;

CREATE TRIGGER volume_attachments_removed AFTER DELETE ON volume_attachments
BEGIN
    UPDATE volumes SET revision = revision + 1 WHERE id = OLD.volume_id;
END;

CREATE TRIGGER volume_types_renamed AFTER UPDATE OF name ON volume_types
BEGIN
    UPDATE volumes SET revision = revision + 1 WHERE volume_type_id = NEW.id;
END;
