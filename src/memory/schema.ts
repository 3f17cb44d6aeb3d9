/**
 * The SQLite schema inside each UserMemory Durable Object (docs/storage.md). Created on the first
 * write only, so that reading a user who never called leaves no storage behind. Every statement is
 * IF NOT EXISTS: an object written by an older version is brought up to date by running it again
 * (version 2 added phones, phone_owner and upkeep).
 */
export const MEMORY_SCHEMA_VERSION = 2;

export const MEMORY_SCHEMA = `
CREATE TABLE IF NOT EXISTS profile (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  user_id TEXT,
  schema_version INTEGER NOT NULL,
  call_count INTEGER NOT NULL DEFAULT 0,
  total_duration_secs INTEGER NOT NULL DEFAULT 0,
  first_call_at INTEGER,
  last_call_at INTEGER,
  last_conversation_id TEXT,
  last_call_summary TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
  conversation_id TEXT PRIMARY KEY,
  started_at INTEGER NOT NULL,
  duration_secs INTEGER NOT NULL,
  title TEXT,
  summary TEXT,
  outcome TEXT,
  received_at INTEGER NOT NULL,
  has_audio INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conversations_by_start ON conversations (started_at DESC, conversation_id DESC);
CREATE TABLE IF NOT EXISTS facts (
  fact_id TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  collected_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
  kind TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (kind, conversation_id)
);
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (received_at);
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  body TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audio (
  conversation_id TEXT PRIMARY KEY,
  agent_id TEXT,
  r2_key TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_blobs (
  seq INTEGER NOT NULL,
  part INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (seq, part)
);
CREATE TABLE IF NOT EXISTS phones (
  phone_number TEXT PRIMARY KEY,
  linked_at INTEGER NOT NULL,
  via TEXT NOT NULL,
  conversation_id TEXT
);
CREATE TABLE IF NOT EXISTS phone_owner (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  phone_number TEXT NOT NULL,
  user_id TEXT,
  linked_at INTEGER NOT NULL,
  via TEXT NOT NULL,
  conversation_id TEXT,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS upkeep (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  retention_anchor INTEGER,
  erasing_since INTEGER
);
`;

/** How much detail a user's memory keeps: counters stay exact, older detail is compacted away. */
export const LIMITS = {
  /** Conversations kept with title and summary (the rest live on in D1 and in the counters). */
  recentConversations: 50,
  /** Conversations rendered into previous_topics (before the character budget applies). */
  topicConversations: 20,
  facts: 200,
  /** Serialised size above which a fact value is not kept in memory (it stays in D1 and R2). */
  factValueChars: 8192,
  /** Delivery ids remembered for deduplication; ElevenLabs retries within about 41 minutes. */
  seenEvents: 10_000,
  /** DO SQLite refuses values over 2 MB: raw payloads are stored in parts. */
  blobPartBytes: 1 << 20,
  /** Outbox items delivered per alarm run. */
  flushBatch: 25,
  /**
   * Conversations erased per Durable Object call (DELETE and retention): 200. Each can cost up to four
   * subrequests (an R2 list, R2 heads of recorded keys, a call to the conversation's own object for its
   * audio link), so one invocation stays under the platform's 1,000-subrequest limit.
   */
  eraseBatch: 100,
  eraseBatchesPerCall: 2,
  /** Phone links undone per Durable Object call during an erasure (each is one call to another object). */
  unlinkBatch: 50,
} as const;
