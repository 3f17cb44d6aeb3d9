-- When the outbox wrote each conversation to D1 (Unix seconds), so the health page can say how far
-- D1 lags behind the acknowledged webhooks (projected_at - received_at). Null for rows written before
-- this migration (and by migration 0004).
ALTER TABLE conversations ADD COLUMN projected_at INTEGER;
