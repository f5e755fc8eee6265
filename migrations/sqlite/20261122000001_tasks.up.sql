-- Per-user counters hand out short task numbers a person can say aloud ("task 3").
CREATE TABLE task_counters (
    user_id     TEXT PRIMARY KEY,
    last_number INTEGER NOT NULL
);

CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      TEXT NOT NULL,
    number       INTEGER NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT,
    completed    BOOLEAN NOT NULL DEFAULT FALSE,
    due_at       TEXT,
    due_all_day  BOOLEAN NOT NULL DEFAULT FALSE,
    priority     INTEGER NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 2),
    tags         TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    completed_at TEXT,
    deleted_at   TEXT,
    UNIQUE (user_id, number)
);

-- Lists read a user's live tasks, open first, by due date.
CREATE INDEX tasks_user_live ON tasks (user_id, completed, due_at) WHERE deleted_at IS NULL;
