DROP INDEX tool_executions_open;
ALTER TABLE tool_executions DROP COLUMN state;
