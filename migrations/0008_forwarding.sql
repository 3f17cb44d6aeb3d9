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
