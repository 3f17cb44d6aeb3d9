-- The operator console's indexes: a user directory and full-text search over transcripts.

-- One row per user with at least one conversation in D1, newest activity first. Counts are recomputed
-- from `conversations` on every write (never incremented), so replaying a write cannot skew them.
CREATE TABLE users (
  user_id TEXT PRIMARY KEY,
  first_call_at INTEGER NOT NULL,
  last_call_at INTEGER NOT NULL,
  conversation_count INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE INDEX users_by_activity ON users (last_call_at DESC, user_id DESC);

-- Full-text index over transcript turns. External content: the text is stored once, in `turns`,
-- and triggers keep the index in step with inserts and deletes.
CREATE VIRTUAL TABLE turns_fts USING fts5(message, content = 'turns', content_rowid = 'turn_id', tokenize = 'unicode61 remove_diacritics 2');

CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns WHEN new.message IS NOT NULL BEGIN
  INSERT INTO turns_fts (rowid, message) VALUES (new.turn_id, new.message);
END;

CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns WHEN old.message IS NOT NULL BEGIN
  INSERT INTO turns_fts (turns_fts, rowid, message) VALUES ('delete', old.turn_id, old.message);
END;
