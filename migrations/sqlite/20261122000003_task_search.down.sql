ALTER TABLE tasks DROP COLUMN search_text;
