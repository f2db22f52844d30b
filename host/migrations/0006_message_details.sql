-- A user message keeps, for administrators only, what the log says about the failure (the
-- driver's text, command lines, paths, each pool's reason); tenants read Cinder's words.
ALTER TABLE messages ADD COLUMN internal_detail TEXT;

-- Messages written before this told tenants the driver's words. Keep those words for
-- administrators, and give tenants Cinder's action and detail for the same event, under
-- Cinder's event ids and resource types (volume/message_field.rs).
UPDATE messages SET
    internal_detail = user_message,
    resource_type = CASE resource_type WHEN 'SNAPSHOT' THEN 'VOLUME_SNAPSHOT' ELSE resource_type END,
    event_id = CASE event_id
        WHEN 'VOLUME_VOLUME_001_003' THEN 'VOLUME_VOLUME_001_003'
        WHEN 'VOLUME_VOLUME_001_009' THEN 'VOLUME_VOLUME_008_012'
        WHEN 'VOLUME_VOLUME_002_001' THEN 'VOLUME_VOLUME_008_012'
        WHEN 'VOLUME_VOLUME_002_008' THEN 'VOLUME_VOLUME_008_001'
        WHEN 'VOLUME_VOLUME_003_001' THEN 'VOLUME_VOLUME_901_001'
        WHEN 'VOLUME_VOLUME_006_001' THEN 'VOLUME_VOLUME_007_010'
        WHEN 'VOLUME_VOLUME_007_001' THEN 'VOLUME_VOLUME_902_001'
        WHEN 'VOLUME_SNAPSHOT_004_001' THEN 'VOLUME_VOLUME_SNAPSHOT_009_013'
        WHEN 'VOLUME_SNAPSHOT_005_001' THEN 'VOLUME_VOLUME_SNAPSHOT_010_016'
        ELSE 'VOLUME_'
            || CASE resource_type WHEN 'SNAPSHOT' THEN 'VOLUME_SNAPSHOT' ELSE resource_type END
            || '_900_001'
    END,
    user_message = CASE event_id
        WHEN 'VOLUME_VOLUME_001_003' THEN 'schedule allocate volume:Could not find any available weighted backend.'
        WHEN 'VOLUME_VOLUME_001_009' THEN 'create volume from backend storage:Driver failed to create the volume. Rescheduled to another backend.'
        WHEN 'VOLUME_VOLUME_002_001' THEN 'create volume from backend storage:Driver failed to create the volume.'
        WHEN 'VOLUME_VOLUME_002_008' THEN 'create volume from backend storage:An unknown error occurred. The service stopped while the volume was being created; it was cleaned up. Create it again.'
        WHEN 'VOLUME_VOLUME_003_001' THEN 'delete volume:An unknown error occurred.'
        WHEN 'VOLUME_VOLUME_006_001' THEN 'extend volume:Volume Driver failed to extend volume.'
        WHEN 'VOLUME_VOLUME_007_001' THEN 'revert volume to snapshot:An unknown error occurred.'
        WHEN 'VOLUME_SNAPSHOT_004_001' THEN 'create snapshot:Snapshot failed to create.'
        WHEN 'VOLUME_SNAPSHOT_005_001' THEN 'delete snapshot:Snapshot failed to delete.'
        ELSE 'unknown action:An unknown error occurred.'
    END;
