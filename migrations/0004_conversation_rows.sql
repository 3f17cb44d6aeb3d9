-- postcall D1 schema, version 4: a conversation is one row. Its transcript moves from `turns` (a row
-- per turn, plus a unique-index entry and a full-text entry each) into `conversations.transcript`,
-- and the full-text index holds one document per conversation. docs/storage.md explains the layout.
--
-- SQL cannot compress, so the rows moved here keep their transcript as uncompressed JSON (format 0,
-- first byte "["); the Worker reads both formats and writes only the compressed one (format 1).
-- A moved transcript is bounded like a new one, so no row can exceed D1's 2 MB: when a conversation's
-- messages and tool payloads as JSON strings (json_quote: a control character a caller typed is six
-- characters once escaped), plus 32 characters per turn for the turn's own JSON (index, role, time,
-- feedback: 70,000 one-word turns make no text but a 2.4 MB array), total more than 250,000 characters
-- (at most 1 MB: a character is at most 4 bytes), its tool payloads are replaced by {"truncated":true},
-- its messages are clipped to an equal share of that total (at least 64 characters) and only its
-- first 2,500 turns are kept, which bounds even 64 escaped characters a turn to about 1 MB (the
-- complete payload is in R2). Everything else moves unchanged.

ALTER TABLE conversations RENAME TO conversations_v1;
DROP INDEX conversations_by_user;
DROP INDEX conversations_by_start;

CREATE TABLE conversations (
  -- The full-text document's rowid. Declared, unlike an implicit rowid, so VACUUM never renumbers it.
  doc_id INTEGER PRIMARY KEY,
  conversation_id TEXT NOT NULL UNIQUE,
  user_id TEXT,
  user_id_source TEXT,
  agent_id TEXT NOT NULL,
  agent_name TEXT,
  status TEXT,
  started_at INTEGER NOT NULL,
  duration_secs INTEGER NOT NULL,
  title TEXT,
  summary TEXT,
  call_successful TEXT,
  termination_reason TEXT,
  main_language TEXT,
  phone_number TEXT,
  phone_direction TEXT,
  phone_provider TEXT,
  turn_count INTEGER NOT NULL,
  analysis TEXT,
  transcript BLOB,
  transcript_key TEXT NOT NULL,
  event_timestamp INTEGER,
  received_at INTEGER NOT NULL
);

CREATE INDEX conversations_by_user ON conversations (user_id, started_at DESC, conversation_id DESC);
CREATE INDEX conversations_by_start ON conversations (started_at);

CREATE VIRTUAL TABLE conversations_fts USING fts5(body, content = '', contentless_delete = 1, detail = 'none', tokenize = 'unicode61 remove_diacritics 2');

-- Each conversation's transcript as JSON, built from its turns in order; `s` is how much text it has,
-- which decides whether it must be bounded.
INSERT INTO conversations (conversation_id, user_id, user_id_source, agent_id, agent_name, status, started_at,
  duration_secs, title, summary, call_successful, termination_reason, main_language, phone_number, phone_direction,
  phone_provider, turn_count, analysis, transcript, transcript_key, event_timestamp, received_at)
SELECT c.conversation_id, c.user_id, c.user_id_source, c.agent_id, c.agent_name, c.status, c.started_at,
  c.duration_secs, c.title, c.summary, c.call_successful, c.termination_reason, c.main_language, c.phone_number,
  c.phone_direction, c.phone_provider, c.turn_count, c.analysis,
  CAST(coalesce((
    SELECT json_group_array(json_array(t.turn_index, t.role, t.message, t.time_in_call_secs, t.tools, t.feedback))
    FROM (
      SELECT turn_index, role, time_in_call_secs, feedback,
        CASE WHEN s.chars <= 250000 THEN message ELSE substr(message, 1, max(64, 250000 / s.n)) END AS message,
        CASE WHEN s.chars <= 250000 OR tools IS NULL THEN tools ELSE '{"truncated":true}' END AS tools
      FROM turns
      WHERE turns.conversation_id = c.conversation_id AND (s.chars <= 250000 OR turn_index < 2500)
      ORDER BY turn_index
    ) t
  ), '[]') AS BLOB),
  c.transcript_key, c.event_timestamp, c.received_at
FROM conversations_v1 c
LEFT JOIN (
  SELECT conversation_id, count(*) AS n,
    coalesce(sum(length(json_quote(message))), 0) + coalesce(sum(length(json_quote(tools))), 0) + 32 * count(*) AS chars
  FROM turns GROUP BY conversation_id
) s ON s.conversation_id = c.conversation_id
ORDER BY c.rowid;

-- One search document per conversation: the messages of the transcript just built, one per line,
-- as the Worker builds it (src/storage/transcript-codec.ts, ftsDocument).
INSERT INTO conversations_fts (rowid, body)
SELECT c.doc_id, (
  SELECT group_concat(m, char(10)) FROM (
    SELECT json_extract(j.value, '$[2]') AS m FROM json_each(CAST(c.transcript AS TEXT)) j
    WHERE json_extract(j.value, '$[2]') IS NOT NULL AND json_extract(j.value, '$[2]') != ''
    ORDER BY j.key
  )
)
FROM conversations c;

DROP TRIGGER turns_fts_insert;
DROP TRIGGER turns_fts_delete;
DROP TABLE turns_fts;
DROP TABLE turns;
DROP TABLE conversations_v1;
