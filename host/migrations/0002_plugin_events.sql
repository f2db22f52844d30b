-- What happened to each backend's driver: swaps, rollbacks, refusals, probations passed.
CREATE TABLE plugin_events (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_version TEXT,
    to_version TEXT,
    reason TEXT,
    took_ms BIGINT,
    created_at TEXT NOT NULL
);
CREATE INDEX plugin_events_backend ON plugin_events (backend, created_at);
