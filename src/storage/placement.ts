/**
 * Where a conversation is, by its id alone (src/storage/shards.ts): its home shard's
 * `conversation_shards` entry names its owner, whose shard holds the row. And the one change of
 * place: an operator's attribution of an unowned conversation (at home) to a user, whose shard may be
 * another; the row is then copied there and removed from home.
 *
 * Which candidate shard a write goes to (src/storage/shards.ts: a key has one candidate per shard
 * generation, usually all the same shard): the earliest that already holds the key, else the newest.
 */
import { countStatements, uncountStatements } from "./counters";
import { allShards, firstOf, homeCandidates, homeShards, ownerShards, userCandidates, type ShardEnv } from "./shards";
import { decodeTranscript, ftsDocument, type StoredValue } from "./transcript-codec";
import { userDirectoryStatement, userDirectoryStatements } from "./users";

export interface ShardEntry {
  user_id: string | null;
  user_id_source: string | null;
  agent_id: string;
}

/** The earliest of `candidates` (shard indexes) where `held` finds the key, else the newest. */
async function writeShard(env: ShardEnv, candidates: number[], held: (db: D1Database) => Promise<boolean>): Promise<D1Database> {
  const dbs = allShards(env);
  if (candidates.length === 1) return dbs[candidates[0]!]!;
  const found = await firstOf(candidates.map((i) => dbs[i]!), async (db) => ((await held(db)) ? db : null));
  return found ?? dbs[candidates.at(-1)!]!;
}

/** The shard a user's rows are written to: the earliest candidate with their `users` directory row, else the newest. */
export async function userWriteShard(env: ShardEnv, userId: string): Promise<D1Database> {
  return writeShard(env, await userCandidates(env, userId), async (db) => (await db.prepare("SELECT 1 AS held FROM users WHERE user_id = ?").bind(userId).first()) !== null);
}

/** What a home shard holds of a conversation: its entry, audio, call failure, or its row while unowned. */
const HOME_HELD = `SELECT 1 AS held WHERE EXISTS (SELECT 1 FROM conversation_shards WHERE conversation_id = ?1)
  OR EXISTS (SELECT 1 FROM audio WHERE conversation_id = ?1) OR EXISTS (SELECT 1 FROM call_failures WHERE conversation_id = ?1)
  OR EXISTS (SELECT 1 FROM conversations WHERE conversation_id = ?1 AND user_id IS NULL)`;

/** The shard a conversation's home rows are written to: the earliest candidate holding any of them, else the newest. */
export async function homeWriteShard(env: ShardEnv, conversationId: string): Promise<D1Database> {
  return writeShard(env, await homeCandidates(env, conversationId), async (db) => (await db.prepare(HOME_HELD).bind(conversationId).first()) !== null);
}

/** The home shard holding the conversation's entry, and the entry (its owner, null for no one); null when D1 has none. */
export async function homeEntry(env: ShardEnv, conversationId: string): Promise<{ db: D1Database; entry: ShardEntry } | null> {
  return firstOf(await homeShards(env, conversationId), async (db) => {
    const entry = await db.prepare("SELECT user_id, user_id_source, agent_id FROM conversation_shards WHERE conversation_id = ?").bind(conversationId).first<ShardEntry>();
    return entry === null ? null : { db, entry };
  });
}

/** The conversation's entry (its owner, null for no one), or null when D1 has none. */
export async function shardEntry(env: ShardEnv, conversationId: string): Promise<ShardEntry | null> {
  return (await homeEntry(env, conversationId))?.entry ?? null;
}

/** The shard that holds the conversation's row, or null when D1 has none. */
export async function shardOfConversation(env: ShardEnv, conversationId: string): Promise<D1Database | null> {
  const entry = await shardEntry(env, conversationId);
  if (entry === null) return null;
  const dbs = await ownerShards(env, conversationId, entry.user_id);
  return firstOf(dbs, async (db) => ((await db.prepare("SELECT 1 FROM conversations WHERE conversation_id = ?").bind(conversationId).first()) === null ? null : db));
}

const COLUMNS = [
  "conversation_id", "user_id", "user_id_source", "agent_id", "agent_name", "status", "started_at", "duration_secs", "title",
  "summary", "call_successful", "termination_reason", "main_language", "phone_number", "phone_direction", "phone_provider",
  "turn_count", "analysis", "transcript", "transcript_key", "event_timestamp", "received_at", "projected_at", "vouched_by",
  "claimed_user_id", "unverified_reason",
] as const;
type FullRow = Record<(typeof COLUMNS)[number], unknown> & { conversation_id: string; started_at: number; duration_secs: number; call_successful: string | null; received_at: number };

/** A BLOB as D1 returns it (an array of bytes) as something it binds again. */
const bindable = (v: unknown) => (Array.isArray(v) ? new Uint8Array(v as number[]) : v);

/**
 * Statements that write a full conversation row (read from another shard) into `db`, with its
 * counters, search document (rebuilt from its transcript) and its owner's directory row; a replay adds nothing.
 */
async function copyStatements(db: D1Database, row: FullRow, now: number): Promise<D1PreparedStatement[]> {
  const turns = await decodeTranscript((bindable(row.transcript) as StoredValue | null) ?? null);
  return [
    db
      .prepare(`INSERT INTO conversations (${COLUMNS.join(", ")}) VALUES (${COLUMNS.map(() => "?").join(", ")}) ON CONFLICT (conversation_id) DO NOTHING`)
      .bind(...COLUMNS.map((c) => bindable(row[c]) ?? null)),
    ...countStatements(db, { startedAt: row.started_at, durationSecs: row.duration_secs, callSuccessful: row.call_successful, receivedAt: row.received_at, projectedAt: null }),
    db
      .prepare("INSERT INTO conversations_fts (rowid, body) SELECT doc_id, ? FROM conversations WHERE conversation_id = ? AND changes() = 1")
      .bind(ftsDocument(turns), row.conversation_id),
    ...(typeof row.user_id === "string" ? [userDirectoryStatement(db, row.user_id, now)] : []),
  ];
}

/** Statements that remove a conversation's row from `db` when `where` holds (counters and search document with it). */
function removeStatements(db: D1Database, where: string, params: unknown[]): D1PreparedStatement[] {
  return [
    ...uncountStatements(db, where, params),
    db.prepare(`DELETE FROM conversations_fts WHERE rowid IN (SELECT doc_id FROM conversations WHERE ${where})`).bind(...params),
    db.prepare(`DELETE FROM conversations WHERE ${where}`).bind(...params),
  ];
}

/**
 * An operator attributes an unattributed conversation to `userId` (POST /v1/conversations/:id/attribute).
 * Only a conversation with no owner changes (or one already theirs); returns the owner after the
 * call, or undefined when D1 has no row. The entry is claimed last, in the batch that removes the row
 * from home: until then a retry finds it unowned and copies again (a no-op); of two operators naming
 * different users at once, the one whose claim lands keeps it and the other's copy is removed.
 */
export async function attributeConversation(env: ShardEnv, conversationId: string, userId: string, now: number): Promise<string | null | undefined> {
  const home = (await homeEntry(env, conversationId))?.db;
  if (home === undefined) return undefined;
  const [entries, rows] = await home.batch<unknown>([
    home.prepare("SELECT user_id FROM conversation_shards WHERE conversation_id = ?").bind(conversationId),
    home.prepare(`SELECT ${COLUMNS.join(", ")} FROM conversations WHERE conversation_id = ? AND user_id IS NULL`).bind(conversationId),
  ]);
  const entry = entries!.results[0] as { user_id: string | null } | undefined;
  const row = rows!.results[0] as FullRow | undefined;
  if (entry === undefined) return undefined;
  if (entry.user_id !== null) return entry.user_id;
  if (row === undefined) return undefined;
  const target = await userWriteShard(env, userId);
  const claim = home
    .prepare("UPDATE conversation_shards SET user_id = ?, user_id_source = 'operator' WHERE conversation_id = ? AND user_id IS NULL")
    .bind(userId, conversationId);
  const pending = home.prepare("UPDATE audio_pending SET user_id = ? WHERE conversation_id = ?").bind(userId, conversationId);
  const claimed = "EXISTS (SELECT 1 FROM conversation_shards WHERE conversation_id = ? AND user_id = ?)";
  if (target === home) {
    await home.batch([
      claim,
      home
        .prepare(`UPDATE conversations SET user_id = ?, user_id_source = 'operator', vouched_by = 'operator' WHERE conversation_id = ? AND user_id IS NULL AND ${claimed}`)
        .bind(userId, conversationId, conversationId, userId),
      pending,
      userDirectoryStatement(home, userId, now),
    ]);
  } else {
    await target.batch(await copyStatements(target, { ...row, user_id: userId, user_id_source: "operator", vouched_by: "operator" }, now));
    await home.batch([claim, pending, ...removeStatements(home, `conversation_id = ? AND user_id IS NULL AND ${claimed}`, [conversationId, conversationId, userId])]);
  }
  const owner = (await home.prepare("SELECT user_id FROM conversation_shards WHERE conversation_id = ?").bind(conversationId).first<{ user_id: string | null }>())?.user_id;
  if (owner !== userId && target !== home) {
    // Another operator's attribution landed first: this copy must not stay in this user's shard.
    await target.batch([...removeStatements(target, "conversation_id = ? AND user_id = ?", [conversationId, userId]), ...userDirectoryStatements(target, userId, now)]);
  }
  return owner;
}
