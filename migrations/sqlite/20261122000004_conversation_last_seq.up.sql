-- The last message number, handed out by the same statement that checks the turn's lease,
-- so appending needs no MAX(seq) scan.
ALTER TABLE conversations ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
UPDATE conversations
   SET last_seq = COALESCE((SELECT MAX(seq) FROM messages WHERE messages.conversation_id = conversations.id), 0);
