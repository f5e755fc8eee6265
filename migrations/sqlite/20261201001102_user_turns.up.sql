-- Chat turns in flight per user, counted across replicas (see the PostgreSQL migration).
-- SQLite serves one process, which counts in memory; the table keeps the schemas alike.
CREATE TABLE user_turns (
    token TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX user_turns_user ON user_turns (user_id, expires_at);
