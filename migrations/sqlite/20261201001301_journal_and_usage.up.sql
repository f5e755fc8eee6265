-- Undo: every change a tool makes to a task, with the task before and after (JSON), grouped
-- by the chat turn or MCP request that made it. Written in the same transaction as the change.
CREATE TABLE task_journal (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    task_number INTEGER NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('add', 'update', 'complete', 'delete', 'restore')),
    task_before TEXT,
    task_after  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    undone_at   TEXT
);
-- The newest group not yet undone, and the later changes to one task.
CREATE INDEX task_journal_user_pending ON task_journal (user_id, id) WHERE undone_at IS NULL;
CREATE INDEX task_journal_user_task ON task_journal (user_id, task_number, id);

-- Usage: which model answered, and the prompt tokens the provider served from its cache.
ALTER TABLE messages ADD COLUMN model TEXT;
ALTER TABLE messages ADD COLUMN cached_prompt_tokens INTEGER;
