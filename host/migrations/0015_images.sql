-- The image-volume cache (Cinder's `image_volume_cache_entries`): per backend
-- (`HOST@BACKEND` or `CLUSTER@BACKEND`), the internal project's volume that holds an
-- image's data, the image's `updated_at` and checksum when it was cached (a changed image
-- is a miss), and when a volume was last made from it (eviction is least recently used).
CREATE TABLE image_volume_cache_entries (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    image_id TEXT NOT NULL,
    image_updated_at TEXT,
    checksum TEXT,
    volume_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    last_used TEXT NOT NULL,
    UNIQUE (backend, image_id)
);
CREATE INDEX image_volume_cache_lru ON image_volume_cache_entries (backend, last_used);
