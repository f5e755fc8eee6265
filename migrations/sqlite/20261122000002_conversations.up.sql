CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    title           TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    -- A turn holds the conversation for itself with a lease (not a transaction), so
    -- replicas never interleave one conversation's history; a crashed holder's lease expires.
    lease_token     TEXT,
    lease_expires_at TEXT
);
CREATE INDEX conversations_user_recent ON conversations (user_id, updated_at DESC);

CREATE TABLE messages (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id   TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    content           TEXT NOT NULL DEFAULT '',
    tool_calls        TEXT,
    tool_call_id      TEXT,
    tool_name         TEXT,
    is_error          BOOLEAN NOT NULL DEFAULT FALSE,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    created_at        TEXT NOT NULL,
    UNIQUE (conversation_id, seq)
);

CREATE TABLE idempotency_keys (
    user_id         TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('running', 'failed', 'done')),
    conversation_id TEXT,
    status_code     INTEGER,
    response        TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE tool_executions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT NOT NULL,
    conversation_id TEXT,
    tool_call_id    TEXT,
    tool            TEXT NOT NULL,
    arguments       TEXT NOT NULL,
    result          TEXT NOT NULL,
    is_error        BOOLEAN NOT NULL,
    duration_ms     INTEGER NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX tool_executions_user ON tool_executions (user_id, created_at);
