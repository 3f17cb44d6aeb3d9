-- postcall D1 schema, version 1. docs/storage.md explains every table.

-- One row per post_call_transcription event (conversation_id is ElevenLabs' id and our idempotency key).
CREATE TABLE conversations (
  conversation_id TEXT PRIMARY KEY,
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
  transcript_key TEXT NOT NULL,
  event_timestamp INTEGER,
  received_at INTEGER NOT NULL
);

CREATE INDEX conversations_by_user ON conversations (user_id, started_at DESC, conversation_id DESC);

-- The transcript, one row per turn.
CREATE TABLE turns (
  -- A declared integer key: the full-text index (turns_fts) refers to it, and unlike an implicit rowid
  -- it never changes (VACUUM may renumber implicit rowids).
  turn_id INTEGER PRIMARY KEY,
  conversation_id TEXT NOT NULL,
  turn_index INTEGER NOT NULL,
  role TEXT NOT NULL,
  message TEXT,
  time_in_call_secs INTEGER NOT NULL,
  tools TEXT,
  feedback TEXT,
  UNIQUE (conversation_id, turn_index)
);

-- call_initiation_failure events: phone calls that never connected.
CREATE TABLE call_failures (
  conversation_id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  failure_reason TEXT NOT NULL,
  provider TEXT,
  from_number TEXT,
  to_number TEXT,
  sip_status_code INTEGER,
  call_sid TEXT,
  metadata TEXT,
  event_timestamp INTEGER,
  received_at INTEGER NOT NULL
);

-- Call audio stored in R2 (post_call_audio events). Its own table, not a flag on conversations,
-- because audio and transcript arrive in either order: each writer only ever inserts its own row.
CREATE TABLE audio (
  conversation_id TEXT PRIMARY KEY,
  agent_id TEXT,
  r2_key TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  stored_at INTEGER NOT NULL
);
