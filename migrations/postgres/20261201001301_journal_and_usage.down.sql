ALTER TABLE messages DROP COLUMN cached_prompt_tokens;
ALTER TABLE messages DROP COLUMN model;
DROP INDEX IF EXISTS task_journal_user_task;
DROP INDEX IF EXISTS task_journal_user_pending;
DROP TABLE task_journal;
