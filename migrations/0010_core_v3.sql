-- Core v3 moved conversations and imports out of the UserMemory class (docs/storage.md "Moving to Core v3").
-- A deployment that already held calls when it was upgraded records when: for LEGACY_WINDOW_SECONDS after it
-- (31 days: a tombstone's lifetime, and then some) a conversation's ledger asks the object of the same name in
-- the old class for what it holds. A deployment created on Core v3 has no such row, and its ledgers never ask.
CREATE TABLE IF NOT EXISTS upgrades (
  name TEXT PRIMARY KEY,
  at INTEGER NOT NULL
);
INSERT OR IGNORE INTO upgrades (name, at)
  SELECT 'core_v3', unixepoch()
  WHERE EXISTS (SELECT 1 FROM conversations) OR EXISTS (SELECT 1 FROM call_failures) OR EXISTS (SELECT 1 FROM audio);
