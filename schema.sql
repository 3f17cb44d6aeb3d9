-- postcall D1 schema: the full current schema, readable in one place. A test checks that applying
-- migrations/ in order produces exactly these tables and indexes. docs/storage.md explains them.

-- One row per post_call_transcription event (conversation_id is ElevenLabs' id and our idempotency key):
-- its metadata, analysis and transcript (migration 0004; before it, the transcript was a row per turn).
CREATE TABLE conversations (
  -- The full-text document's rowid (conversations_fts). Declared, unlike an implicit rowid, so VACUUM
  -- never renumbers it.
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
  -- The normalised turns, encoded (src/storage/transcript-codec.ts): first byte 0x01 = deflate-raw JSON,
  -- "[" = plain JSON (rows moved by migration 0004).
  transcript BLOB,
  transcript_key TEXT NOT NULL,
  event_timestamp INTEGER,
  received_at INTEGER NOT NULL,
  -- How the owner was vouched for (migration 0005): token | telephony | operator | claimed; null: no owner.
  vouched_by TEXT,
  -- An app user id the event claimed without proof (then not the owner), and why it was not believed.
  claimed_user_id TEXT,
  unverified_reason TEXT,
  -- When the outbox wrote this row (migration 0009): projected_at - received_at is D1's lag behind the
  -- acknowledged webhook. Null for rows written before 0009.
  projected_at INTEGER
);

CREATE INDEX conversations_by_user ON conversations (user_id, started_at DESC, conversation_id DESC);
-- Retention finds expired conversations of every owner, including unattributed ones (migration 0002).
CREATE INDEX conversations_by_start ON conversations (started_at);

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

-- Erasure removes a user's call failures by phone number; retention by age (migration 0002).
CREATE INDEX call_failures_by_from_number ON call_failures (from_number);
CREATE INDEX call_failures_by_to_number ON call_failures (to_number);
CREATE INDEX call_failures_by_received ON call_failures (received_at);

-- Call audio stored in R2 (post_call_audio events). Its own table, not a flag on conversations,
-- because audio and transcript arrive in either order: each writer only ever inserts its own row.
CREATE TABLE audio (
  conversation_id TEXT PRIMARY KEY,
  agent_id TEXT,
  r2_key TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  stored_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX audio_by_stored ON audio (stored_at);
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

-- Full-text index over transcripts: one document per conversation (its messages), rowid = conversations.doc_id.
-- Contentless: it keeps no copy of the text (the transcript is in `conversations`), and
-- contentless_delete lets erasure and retention delete a document by rowid, in the batch that deletes its row.
CREATE VIRTUAL TABLE conversations_fts USING fts5(body, content = '', contentless_delete = 1, detail = 'none', tokenize = 'unicode61 remove_diacritics 2');

-- Forwarding's dead letters (docs/forwarding.md): one row per (event, destination) that could not be
-- delivered, with the last status and error. Written by the dead-letter queue's consumer; listed by
-- GET /v1/forwarding/failures; removed when POST /v1/forwarding/failures/:id/retry delivers it.
CREATE TABLE forward_failures (
  failure_id TEXT PRIMARY KEY,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  destination TEXT NOT NULL,
  conversation_id TEXT,
  user_id TEXT,
  message TEXT NOT NULL,
  last_status INTEGER,
  last_error TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  first_failed_at INTEGER NOT NULL,
  last_failed_at INTEGER NOT NULL,
  retried_at INTEGER
);

CREATE INDEX forward_failures_by_time ON forward_failures (last_failed_at DESC, failure_id DESC);
CREATE INDEX forward_failures_by_user ON forward_failures (user_id);

-- Conversations no one owns, newest received first (unverified claims, no user at all; migration 0005).
CREATE INDEX conversations_unattributed ON conversations (received_at DESC, conversation_id DESC) WHERE user_id IS NULL;
-- Erasing a user also erases the conversations that claimed them without proof.
CREATE INDEX conversations_by_claim ON conversations (claimed_user_id) WHERE claimed_user_id IS NOT NULL;

-- Later events for a conversation that already has another owner: kept aside raw in R2 (quarantine/),
-- counted here for the operator (migration 0005).
CREATE TABLE conversation_conflicts (
  conversation_id TEXT NOT NULL,
  r2_key TEXT NOT NULL,
  claimed_user_id TEXT,
  owner_user_id TEXT,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, r2_key)
);

CREATE INDEX conversation_conflicts_by_claimant ON conversation_conflicts (claimed_user_id);

-- 0007: history imports (console list; the import's Durable Object is the authority).
CREATE TABLE imports (
  import_id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  since INTEGER,
  include_audio INTEGER NOT NULL,
  status TEXT NOT NULL,
  pages INTEGER NOT NULL,
  seen INTEGER NOT NULL,
  imported INTEGER NOT NULL,
  skipped INTEGER NOT NULL,
  failed INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER
);

CREATE INDEX imports_by_created ON imports (created_at DESC, import_id DESC);

-- Upgrades that need a window of care (migrations/0010_core_v3.sql): Core v3's take-over of pre-v3 objects.
CREATE TABLE upgrades (
  name TEXT PRIMARY KEY,
  at INTEGER NOT NULL
);

-- 0011: the erasure ledger (docs/storage.md "The erasure ledger"): keyed hashes only, never an id in clear.
CREATE TABLE erasure_keys (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  key TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

-- One row per erasure: when, whose (hashed), what it removed where; at_source: ERASE_AT_ELEVENLABS was on.
CREATE TABLE erasures (
  erasure_id TEXT PRIMARY KEY,
  subject_hash TEXT NOT NULL,
  began_at INTEGER NOT NULL,
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
  at_source INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL
);

CREATE INDEX erasures_by_time ON erasures (began_at DESC, erasure_id DESC);
CREATE INDEX erasures_by_subject ON erasures (subject_hash, began_at DESC);

-- Every conversation an erasure removed, by keyed hash, and how its deletion at ElevenLabs went
-- (source_state null: not asked; pending, done, failed; source_status: the last HTTP status, 0 = unreachable).
CREATE TABLE erased_conversations (
  conversation_hash TEXT PRIMARY KEY,
  erasure_id TEXT NOT NULL,
  erased_at INTEGER NOT NULL,
  source_state TEXT,
  source_attempts INTEGER NOT NULL DEFAULT 0,
  source_status INTEGER,
  source_done_at INTEGER
);

CREATE INDEX erased_conversations_by_erasure ON erased_conversations (erasure_id, source_state);
-- 0012: shards (src/storage/shards.ts). Every conversation's owner, in its home shard (the hash of its
-- id): a lookup by id reads this row, then the owner's shard. Where the audio and the transcript meet.
-- WITHOUT ROWID (0013), like the other key-only tables: one entry written per row, not two.
CREATE TABLE conversation_shards (
  conversation_id TEXT PRIMARY KEY,
  user_id TEXT,
  user_id_source TEXT,
  agent_id TEXT NOT NULL
) WITHOUT ROWID;

-- 0013: the health page's counters (src/storage/health.ts), one row per UTC hour the calls started
-- (started_at / 3600), kept by one UPSERT in the batches that insert and delete conversations (in the
-- conversation's shard), so the page never scans conversations. Calls by outcome (call_successful;
-- anything but success or failure counts as unknown) and by duration bucket (DURATION_BOUNDS index,
-- d0-d6); the projection's lag of the calls started that hour: written, summed, largest, last written.
CREATE TABLE health_hourly (
  hour INTEGER PRIMARY KEY,
  success INTEGER NOT NULL DEFAULT 0,
  failure INTEGER NOT NULL DEFAULT 0,
  unknown INTEGER NOT NULL DEFAULT 0,
  d0 INTEGER NOT NULL DEFAULT 0,
  d1 INTEGER NOT NULL DEFAULT 0,
  d2 INTEGER NOT NULL DEFAULT 0,
  d3 INTEGER NOT NULL DEFAULT 0,
  d4 INTEGER NOT NULL DEFAULT 0,
  d5 INTEGER NOT NULL DEFAULT 0,
  d6 INTEGER NOT NULL DEFAULT 0,
  lag_n INTEGER NOT NULL DEFAULT 0,
  lag_sum INTEGER NOT NULL DEFAULT 0,
  lag_max INTEGER,
  last_projected_at INTEGER
);
-- Agents that delivered audio, and when last (to the hour; home shards, with the audio rows).
CREATE TABLE audio_agents (
  agent_id TEXT PRIMARY KEY,
  last_audio_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Conversations stored without audio yet, of agents that delivered audio to the shard in the month
-- before (home shards): gone when the audio comes, with the conversation, or after 31 days (the daily
-- sweep, agent by agent through the index).
CREATE TABLE audio_pending (
  conversation_id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  user_id TEXT,
  started_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX audio_pending_by_agent ON audio_pending (agent_id, received_at);
-- 0014: the shards each generation added to D1_SHARDS, in order (src/storage/shards.ts generationSizes;
-- read only in DB).
CREATE TABLE shard_generations (
  generation INTEGER PRIMARY KEY,
  shards TEXT NOT NULL,
  recorded_at INTEGER NOT NULL
);
