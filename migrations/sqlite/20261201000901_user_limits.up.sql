-- The same table as on PostgreSQL, for one schema across dialects. SQLite serves one
-- process, which counts its per-user limits in memory; nothing writes here yet.
CREATE TABLE user_limits (
    limit_name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    tat TEXT NOT NULL,
    PRIMARY KEY (limit_name, user_id)
);
