-- History imports from ElevenLabs' API (POST /v1/imports): one row per import, the console's list.
-- The import's own Durable Object (`import:<id>`) is the authority for its progress; this row is a
-- copy it refreshes after every step, so listing imports needs no call to each object.
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
