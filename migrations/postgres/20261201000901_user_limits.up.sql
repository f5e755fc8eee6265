-- Per-user limits counted in the database, so that every replica draws on one allowance.
-- One row per (limit, user): the generic cell rate algorithm's theoretical arrival time of
-- the next allowed event. A row whose tat is in the past means "full allowance" and may be
-- deleted at any time. Further per-user limits are new limit_name values, not new tables.
CREATE TABLE user_limits (
    limit_name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    tat TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (limit_name, user_id)
);
CREATE INDEX user_limits_tat ON user_limits (tat);
