-- Lower-cased title and description, computed by the application with full Unicode case
-- folding (SQLite's lower() folds ASCII only), so text search behaves alike on both stores.
ALTER TABLE tasks ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE tasks SET search_text = lower(title || ' ' || COALESCE(description, ''));
