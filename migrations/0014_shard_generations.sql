-- 0014: shard generations (src/storage/shards.ts generationSizes, docs/storage.md "Shards"). In DB only
-- (the table is created on every shard, like all tables, and read only in DB). Each row is the shards
-- one generation added to D1_SHARDS, in order; the Worker records a row when it first sees a
-- D1_SHARDS that extends the recorded list, and refuses one that does not.
CREATE TABLE shard_generations (
  generation INTEGER PRIMARY KEY,
  shards TEXT NOT NULL,
  recorded_at INTEGER NOT NULL
);
