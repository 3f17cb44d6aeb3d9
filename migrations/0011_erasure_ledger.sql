-- The erasure ledger (docs/storage.md "The erasure ledger"): what outlives every erasure, and holds no personal data.
-- A user id or a conversation id is never stored here, only its keyed hash (HMAC-SHA256, 128 bits, hex) under the
-- ledger's key: ERASURE_LEDGER_KEY when set, else the random key kept in `erasure_keys` (src/storage/erasures.ts).

-- The key postcall generates for itself when ERASURE_LEDGER_KEY is not set (one row, written on first use).
CREATE TABLE erasure_keys (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  key TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

-- One row per erasure (DELETE /v1/users/:userId that began one): when, whose (hashed), what it removed where.
CREATE TABLE erasures (
  erasure_id TEXT PRIMARY KEY,
  subject_hash TEXT NOT NULL,
  began_at INTEGER NOT NULL,
  -- When postcall's own copies were all gone (null while the erasure is under way).
  finished_at INTEGER,
  memory_rows INTEGER NOT NULL DEFAULT 0,
  conversations INTEGER NOT NULL DEFAULT 0,
  turns INTEGER NOT NULL DEFAULT 0,
  audio INTEGER NOT NULL DEFAULT 0,
  call_failures INTEGER NOT NULL DEFAULT 0,
  r2_objects INTEGER NOT NULL DEFAULT 0,
  phone_links INTEGER NOT NULL DEFAULT 0,
  scopes INTEGER NOT NULL DEFAULT 0,
  forwarded INTEGER NOT NULL DEFAULT 0,
  -- Whether the erasure asked ElevenLabs to delete the conversations too (ERASE_AT_ELEVENLABS).
  at_source INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL
);

CREATE INDEX erasures_by_time ON erasures (began_at DESC, erasure_id DESC);
CREATE INDEX erasures_by_subject ON erasures (subject_hash, began_at DESC);

-- Every conversation an erasure removed, by keyed hash: such a conversation never comes back (an import, an
-- attribution or a backfill asks here), and, with ERASE_AT_ELEVENLABS, how its deletion at ElevenLabs went.
CREATE TABLE erased_conversations (
  conversation_hash TEXT PRIMARY KEY,
  erasure_id TEXT NOT NULL,
  erased_at INTEGER NOT NULL,
  -- null: not asked of ElevenLabs; pending (queued or being retried), done (deleted, or ElevenLabs had no such
  -- conversation: 404), failed (ElevenLabs refused it for good).
  source_state TEXT,
  source_attempts INTEGER NOT NULL DEFAULT 0,
  -- The last answer's HTTP status (0: ElevenLabs could not be reached). Never a message: it could quote the id.
  source_status INTEGER,
  source_done_at INTEGER
);

CREATE INDEX erased_conversations_by_erasure ON erased_conversations (erasure_id, source_state);
