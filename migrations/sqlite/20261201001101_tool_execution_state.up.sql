-- A tool call is recorded as 'started' before it runs and 'finished' after, so a process
-- killed mid-call leaves a trace; the next turn of the conversation marks it 'interrupted'.
ALTER TABLE tool_executions ADD COLUMN state TEXT NOT NULL DEFAULT 'finished';
CREATE INDEX tool_executions_open ON tool_executions (conversation_id, tool_call_id) WHERE state = 'started';
