-- Chat turns in flight per user, counted across replicas: one row per running turn, deleted
-- when the turn ends. A row outlives its turn only if the process died; it then stops
-- counting at expires_at (the turn's deadline and a margin), so no slot is ever lost.
CREATE TABLE user_turns (
    token TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX user_turns_user ON user_turns (user_id, expires_at);
