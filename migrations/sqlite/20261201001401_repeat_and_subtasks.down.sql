DROP INDEX IF EXISTS tasks_user_parent;
ALTER TABLE tasks DROP COLUMN parent_number;
ALTER TABLE tasks DROP COLUMN repeat_tz;
ALTER TABLE tasks DROP COLUMN repeat_rule;
