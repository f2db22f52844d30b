-- PostgreSQL's text of 0005_revisions: the same revisions, bumped by PL/pgSQL triggers.
-- A volume's revision changes whenever anything its view shows changes: its row, its
-- attachments, its type's name.
ALTER TABLE volumes ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

CREATE FUNCTION volumes_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.revision = OLD.revision THEN
        NEW.revision := OLD.revision + 1;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER volumes_revision BEFORE UPDATE ON volumes
FOR EACH ROW EXECUTE FUNCTION volumes_revision();

CREATE FUNCTION volume_attachments_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE volumes SET revision = revision + 1 WHERE id = NEW.volume_id;
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE volumes SET revision = revision + 1 WHERE id IN (OLD.volume_id, NEW.volume_id);
        RETURN NEW;
    ELSE
        UPDATE volumes SET revision = revision + 1 WHERE id = OLD.volume_id;
        RETURN OLD;
    END IF;
END;
$$;
CREATE TRIGGER volume_attachments_revision AFTER INSERT OR UPDATE OR DELETE ON volume_attachments
FOR EACH ROW EXECUTE FUNCTION volume_attachments_revision();

CREATE FUNCTION volume_types_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE volumes SET revision = revision + 1 WHERE volume_type_id = NEW.id;
    RETURN NEW;
END;
$$;
CREATE TRIGGER volume_types_renamed AFTER UPDATE OF name ON volume_types
FOR EACH ROW EXECUTE FUNCTION volume_types_renamed();
