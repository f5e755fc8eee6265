DROP TABLE tool_executions;
DROP TABLE idempotency_keys;
DROP TABLE messages;
DROP TABLE conversations;
