-- Volumes that move (migrate, retype with a migration): Cinder's `migration_status`
-- (`starting`, `migrating`, `completing`, `success`, `error`, or `target:ID` on a
-- migration's destination) and `_name_id`, the id the volume's storage is named after
-- once a migration moved it to storage made for another id (NULL: its own id).
ALTER TABLE volumes ADD COLUMN migration_status TEXT;
ALTER TABLE volumes ADD COLUMN name_id TEXT;
