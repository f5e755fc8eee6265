-- Repeating tasks: the RFC 5545 RRULE value (without "RRULE:", COUNT already turned into
-- UNTIL) and the IANA zone its wall-clock times are read in. The due date is the rule's
-- DTSTART, so no start is stored: completing the task moves the due date to the next
-- occurrence. Both NULL: the task does not repeat.
ALTER TABLE tasks ADD COLUMN repeat_rule TEXT;
ALTER TABLE tasks ADD COLUMN repeat_tz TEXT;
-- Subtasks: the number of the parent task of the same user (one level deep).
ALTER TABLE tasks ADD COLUMN parent_number INTEGER;
CREATE INDEX tasks_user_parent ON tasks (user_id, parent_number) WHERE parent_number IS NOT NULL;
