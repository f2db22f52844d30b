-- Tokens for `[auth] strategy = "tokens"`, made by `ashlar token create`. Only each
-- token's SHA-256 (hex) is kept: the token itself is shown once and never stored. A
-- revoked token keeps its row, with `revoked_at`, so `ashlar token list` shows it.
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    -- Keystone's role names as given, comma-separated (`member,reader`).
    roles TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
