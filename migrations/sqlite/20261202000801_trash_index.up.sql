-- The trash, most recently deleted first (the agent's "Recently deleted" view and
-- list_tasks with status "deleted"): a few index entries instead of every task of the user.
CREATE INDEX tasks_user_trash ON tasks (user_id, deleted_at DESC, number DESC) WHERE deleted_at IS NOT NULL;
