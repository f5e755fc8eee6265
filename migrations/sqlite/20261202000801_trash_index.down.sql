DROP INDEX IF EXISTS tasks_user_trash;
