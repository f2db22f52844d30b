-- Cinder's volume admin metadata (`readonly`, `attached_mode`: what the tenant may read
-- but only the service and administrators write) and the image metadata a volume carries
-- (`volume_image_metadata`), each a JSON object on the volume's row, as its metadata is.
-- Both show in the volume's view, so changing them bumps the revision (migration 0005's
-- trigger on the row does it).
ALTER TABLE volumes ADD COLUMN admin_metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE volumes ADD COLUMN image_metadata TEXT NOT NULL DEFAULT '{}';
