-- 0013: fewer D1 rows written per conversation and per audio (issue 23: 0012 took a transcription
-- from 7.25 to 16.26 rows written, an audio event from 2 to 5). D1 counts every b-tree entry written:
-- a rowid table with a TEXT PRIMARY KEY writes its row and its autoindex, a WITHOUT ROWID table one.
-- Applied to every shard; the data of the tables it replaces is carried over.

-- The health counters, folded into one row per UTC hour the calls started (started_at / 3600): one
-- UPSERT per conversation instead of three. Columns per outcome (call_successful: success, failure,
-- anything else or none counts as unknown) and per duration bucket (src/records/health-charts.ts
-- DURATION_BOUNDS, d0-d6); the projection's lag (projected_at - received_at) of the calls started
-- that hour: written, summed, largest, last written. Rebuilt from the conversations each shard holds.
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
INSERT INTO health_hourly (hour, success, failure, unknown, d0, d1, d2, d3, d4, d5, d6, lag_n, lag_sum, lag_max, last_projected_at)
  SELECT started_at / 3600,
    count(CASE WHEN call_successful = 'success' THEN 1 END),
    count(CASE WHEN call_successful = 'failure' THEN 1 END),
    count(CASE WHEN call_successful IS NULL OR call_successful NOT IN ('success', 'failure') THEN 1 END),
    count(CASE WHEN duration_secs < 30 THEN 1 END),
    count(CASE WHEN duration_secs >= 30 AND duration_secs < 60 THEN 1 END),
    count(CASE WHEN duration_secs >= 60 AND duration_secs < 120 THEN 1 END),
    count(CASE WHEN duration_secs >= 120 AND duration_secs < 300 THEN 1 END),
    count(CASE WHEN duration_secs >= 300 AND duration_secs < 600 THEN 1 END),
    count(CASE WHEN duration_secs >= 600 AND duration_secs < 1200 THEN 1 END),
    count(CASE WHEN duration_secs >= 1200 THEN 1 END),
    count(projected_at), coalesce(sum(projected_at - received_at), 0), max(projected_at - received_at), max(projected_at)
  FROM conversations WHERE true GROUP BY 1;
DROP TABLE health_calls_daily;
DROP TABLE health_durations_daily;
DROP TABLE health_projection_hourly;

-- Key-only tables become WITHOUT ROWID (one entry written per row instead of two). Each old table is
-- renamed, the new one created under the old name, the rows copied, the old one dropped.
ALTER TABLE conversation_shards RENAME TO conversation_shards_0012;
CREATE TABLE conversation_shards (
  conversation_id TEXT PRIMARY KEY,
  user_id TEXT,
  user_id_source TEXT,
  agent_id TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO conversation_shards (conversation_id, user_id, user_id_source, agent_id)
  SELECT conversation_id, user_id, user_id_source, agent_id FROM conversation_shards_0012;
DROP TABLE conversation_shards_0012;

ALTER TABLE audio RENAME TO audio_0012;
DROP INDEX audio_by_stored;
CREATE TABLE audio (
  conversation_id TEXT PRIMARY KEY,
  agent_id TEXT,
  r2_key TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  stored_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, stored_at)
  SELECT conversation_id, agent_id, r2_key, bytes, sha256, stored_at FROM audio_0012;
DROP TABLE audio_0012;
CREATE INDEX audio_by_stored ON audio (stored_at);

ALTER TABLE audio_agents RENAME TO audio_agents_0012;
CREATE TABLE audio_agents (
  agent_id TEXT PRIMARY KEY,
  last_audio_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO audio_agents (agent_id, last_audio_at) SELECT agent_id, last_audio_at FROM audio_agents_0012;
DROP TABLE audio_agents_0012;

-- Conversations waiting for audio: now only those of agents that delivered audio to the shard in the
-- month before (audio_agents), so a deployment without audio writes none; one index (by agent: the
-- health page's read and the sweep's both go through the agents), not two.
ALTER TABLE audio_pending RENAME TO audio_pending_0012;
DROP INDEX audio_pending_by_agent;
DROP INDEX audio_pending_by_received;
CREATE TABLE audio_pending (
  conversation_id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  user_id TEXT,
  started_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO audio_pending (conversation_id, agent_id, user_id, started_at, received_at)
  SELECT p.conversation_id, p.agent_id, p.user_id, p.started_at, p.received_at FROM audio_pending_0012 p
  WHERE EXISTS (SELECT 1 FROM audio_agents g WHERE g.agent_id = p.agent_id);
DROP TABLE audio_pending_0012;
CREATE INDEX audio_pending_by_agent ON audio_pending (agent_id, received_at);
