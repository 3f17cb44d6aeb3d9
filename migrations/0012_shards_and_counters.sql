-- 0012: D1 shards (src/storage/shards.ts) and the health page's counters (src/storage/health.ts).
-- Applied to every shard named in D1_SHARDS. The backfills below read the conversations a shard
-- already holds once, at the upgrade (on a new shard they find nothing).

-- Every conversation's owner, in the conversation's home shard (the hash of its id): a lookup by id
-- reads this one row, then the owner's shard. Also where the audio and the transcript meet.
CREATE TABLE conversation_shards (
  conversation_id TEXT PRIMARY KEY,
  user_id TEXT,
  user_id_source TEXT,
  agent_id TEXT NOT NULL
);
INSERT OR IGNORE INTO conversation_shards (conversation_id, user_id, user_id_source, agent_id)
  SELECT conversation_id, user_id, user_id_source, agent_id FROM conversations;

-- Stored calls by UTC day (started_at / 86400) and outcome (call_successful, or 'unknown'): added to
-- in the batch that inserts a conversation, taken from in the batch that deletes one.
CREATE TABLE health_calls_daily (
  day INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (day, outcome)
);
INSERT INTO health_calls_daily (day, outcome, n)
  SELECT started_at / 86400, coalesce(call_successful, 'unknown'), count(*) FROM conversations WHERE true GROUP BY 1, 2;

-- Stored calls by UTC day and duration bucket (src/storage/health.ts DURATION_BOUNDS: index 0-6).
CREATE TABLE health_durations_daily (
  day INTEGER NOT NULL,
  bucket INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (day, bucket)
);
INSERT INTO health_durations_daily (day, bucket, n)
  SELECT started_at / 86400,
    CASE WHEN duration_secs < 30 THEN 0 WHEN duration_secs < 60 THEN 1 WHEN duration_secs < 120 THEN 2
      WHEN duration_secs < 300 THEN 3 WHEN duration_secs < 600 THEN 4 WHEN duration_secs < 1200 THEN 5 ELSE 6 END,
    count(*) FROM conversations WHERE true GROUP BY 1, 2;

-- The projection's lag by hour received (received_at / 3600): conversations written, the sum and the
-- largest of projected_at - received_at, the last projected_at. Only ever added to.
CREATE TABLE health_projection_hourly (
  hour INTEGER PRIMARY KEY,
  n INTEGER NOT NULL,
  lag_sum INTEGER NOT NULL,
  lag_max INTEGER NOT NULL,
  last_projected_at INTEGER NOT NULL
);
INSERT INTO health_projection_hourly (hour, n, lag_sum, lag_max, last_projected_at)
  SELECT received_at / 3600, count(*), sum(projected_at - received_at), max(projected_at - received_at), max(projected_at)
  FROM conversations WHERE projected_at IS NOT NULL AND received_at >= unixepoch() - 2 * 86400 GROUP BY 1;

-- Agents that delivered audio, and when last (home shards: where audio rows are written).
CREATE TABLE audio_agents (
  agent_id TEXT PRIMARY KEY,
  last_audio_at INTEGER NOT NULL
);
INSERT INTO audio_agents (agent_id, last_audio_at)
  SELECT agent_id, max(stored_at) FROM audio WHERE agent_id IS NOT NULL GROUP BY agent_id;

-- Conversations stored without audio (yet), in their home shard: removed when the audio comes, with
-- the conversation, or after 31 days by the daily sweep. The health page counts those of agents that
-- do send audio (index by agent), so agents without audio cost no read.
CREATE TABLE audio_pending (
  conversation_id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  user_id TEXT,
  started_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE INDEX audio_pending_by_agent ON audio_pending (agent_id, received_at);
CREATE INDEX audio_pending_by_received ON audio_pending (received_at);
INSERT INTO audio_pending (conversation_id, agent_id, user_id, started_at, received_at)
  SELECT c.conversation_id, c.agent_id, c.user_id, c.started_at, c.received_at FROM conversations c
  WHERE c.received_at >= unixepoch() - 31 * 86400 AND NOT EXISTS (SELECT 1 FROM audio a WHERE a.conversation_id = c.conversation_id);

-- The daily sweep's lone-audio step (src/storage/expiry.ts expiredLoneAudio) finds audio stored before
-- the cutoff by this index, not by reading every audio row (which grows with history).
CREATE INDEX audio_by_stored ON audio (stored_at);
