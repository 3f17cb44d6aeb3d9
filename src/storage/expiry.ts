/**
 * The D1 reads that find what retention and erasure must remove (the removal itself is
 * src/storage/erase.ts). Times are Unix seconds; every list is bounded by `limit`. Those taking `db`
 * read one shard (each of a user's candidates: src/storage/shards.ts `onUserShards`; or each in turn: the sweep); those
 * taking `env` find the shards themselves.
 */
import { byHome, onEveryShard, onUserShards, type ShardEnv } from "./shards";

const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");

const ids = (rows: { conversation_id: string }[]) => rows.map((r) => r.conversation_id);

/** Conversations D1 attributes to this user (erasure), in every shard that may hold them. */
export async function conversationsOfUser(env: ShardEnv, userId: string, limit: number): Promise<string[]> {
  const found = await onUserShards(env, userId, async (db) =>
    ids((await db.prepare("SELECT conversation_id FROM conversations WHERE user_id = ? LIMIT ?").bind(userId, limit).all<{ conversation_id: string }>()).results),
  );
  return found.slice(0, limit);
}

/**
 * Conversations that claimed this user without proof and so belong to no one (erasure: they may hold
 * the user's words, and a "forget me" covers them). Index conversations_by_claim.
 */
export async function unverifiedClaimsOf(env: ShardEnv, userId: string, limit: number): Promise<string[]> {
  // Unowned, so in their home shards: every shard is asked.
  const found = await onEveryShard(env, async (db) =>
    ids(
      (
        await db
          .prepare("SELECT conversation_id FROM conversations WHERE claimed_user_id = ? AND user_id IS NULL LIMIT ?")
          .bind(userId, limit)
          .all<{ conversation_id: string }>()
      ).results,
    ),
  );
  return found.flat().slice(0, limit);
}

/** This user's conversations that started before `cutoff`, in every shard that may hold them. */
export async function expiredOfUserEverywhere(env: ShardEnv, userId: string, cutoff: number, limit: number): Promise<string[]> {
  return (await onUserShards(env, userId, (db) => expiredOfUser(db, userId, cutoff, limit))).slice(0, limit);
}

/** This user's conversations in `db` that started before `cutoff`, oldest first. */
export async function expiredOfUser(db: D1Database, userId: string, cutoff: number, limit: number): Promise<string[]> {
  const { results } = await db
    .prepare("SELECT conversation_id FROM conversations WHERE user_id = ? AND started_at < ? ORDER BY started_at LIMIT ?")
    .bind(userId, cutoff, limit)
    .all<{ conversation_id: string }>();
  return ids(results);
}

/** Of these conversation ids, the unattributed ones (no user) that started before `cutoff`. */
export async function expiredUnattributedAmong(env: ShardEnv, among: string[], cutoff: number, limit: number): Promise<string[]> {
  const found = await Promise.all((await byHome(env, among)).map((g) => expiredUnattributedIn(g.db, g.ids, cutoff, limit)));
  return found.flat().slice(0, limit);
}

async function expiredUnattributedIn(db: D1Database, among: string[], cutoff: number, limit: number): Promise<string[]> {
  if (among.length === 0) return [];
  const { results } = await db
    .prepare(
      `SELECT conversation_id FROM conversations WHERE conversation_id IN (${placeholders(among.length)})
       AND user_id IS NULL AND started_at < ? LIMIT ?`,
    )
    .bind(...among, cutoff, limit)
    .all<{ conversation_id: string }>();
  return ids(results);
}

/** Start of this user's oldest conversation in D1, or null when they have none. */
export async function oldestStartOfUser(env: ShardEnv, userId: string): Promise<number | null> {
  const found = await onUserShards(env, userId, async (db) => {
    const m = (await db.prepare("SELECT min(started_at) AS m FROM conversations WHERE user_id = ?").bind(userId).first<{ m: number | null }>())?.m;
    return typeof m === "number" ? [m] : [];
  });
  return found.length === 0 ? null : Math.min(...found);
}

/** Start of the oldest unattributed conversation among these ids, or null. */
export async function oldestUnattributedStartAmong(env: ShardEnv, among: string[]): Promise<number | null> {
  const found = (await Promise.all((await byHome(env, among)).map((g) => oldestUnattributedIn(g.db, g.ids)))).filter((m) => m !== null);
  return found.length === 0 ? null : Math.min(...found);
}

async function oldestUnattributedIn(db: D1Database, among: string[]): Promise<number | null> {
  if (among.length === 0) return null;
  const row = await db
    .prepare(`SELECT min(started_at) AS m FROM conversations WHERE conversation_id IN (${placeholders(among.length)}) AND user_id IS NULL`)
    .bind(...among)
    .first<{ m: number | null }>();
  return row?.m ?? null;
}

/**
 * Users with a conversation that started before `cutoff`, each with the agents of those conversations
 * (whose agent-scoped memories of the user hold them under MEMORY_SCOPE="agent"); at most `limit`
 * (user, agent) pairs.
 */
export async function usersAndAgentsWithExpired(db: D1Database, cutoff: number, limit: number): Promise<Map<string, string[]>> {
  const { results } = await db
    .prepare("SELECT DISTINCT user_id, agent_id FROM conversations WHERE started_at < ? AND user_id IS NOT NULL LIMIT ?")
    .bind(cutoff, limit)
    .all<{ user_id: string; agent_id: string }>();
  const out = new Map<string, string[]>();
  for (const r of results) out.set(r.user_id, [...(out.get(r.user_id) ?? []), r.agent_id]);
  return out;
}

/** Unattributed conversations that started before `cutoff`. */
export async function expiredUnattributed(db: D1Database, cutoff: number, limit: number): Promise<string[]> {
  const { results } = await db
    .prepare("SELECT conversation_id FROM conversations WHERE user_id IS NULL AND started_at < ? LIMIT ?")
    .bind(cutoff, limit)
    .all<{ conversation_id: string }>();
  return ids(results);
}

/**
 * Audio stored before `cutoff` with no conversation (no `conversation_shards` entry beside it, in the
 * home shard `db`): its transcript never came (or was erased or expired before the audio arrived), so
 * no conversation leads to it. Audio has no start time; the time it was stored stands in for it.
 */
export async function expiredLoneAudio(db: D1Database, cutoff: number, limit: number): Promise<string[]> {
  const { results } = await db
    .prepare(
      `SELECT conversation_id FROM audio a WHERE stored_at < ?
       AND NOT EXISTS (SELECT 1 FROM conversation_shards c WHERE c.conversation_id = a.conversation_id) LIMIT ?`,
    )
    .bind(cutoff, limit)
    .all<{ conversation_id: string }>();
  return ids(results);
}

/**
 * Forgets, in one shard, conversations that waited more than a month for audio (the health page looks
 * back 30 days), found agent by agent through `audio_pending_by_agent` (only agents in `audio_agents`
 * have waiting conversations: src/storage/conversations.ts).
 */
export async function pruneAudioPending(db: D1Database, before: number, limit: number): Promise<number> {
  const r = await db
    .prepare(
      `DELETE FROM audio_pending WHERE conversation_id IN (SELECT conversation_id FROM audio_pending
       WHERE agent_id IN (SELECT agent_id FROM audio_agents) AND received_at < ? LIMIT ?)`,
    )
    .bind(before, limit)
    .run();
  return r.meta.changes;
}
