/**
 * Quarantine: a later event for a conversation that already has another owner (docs/storage.md).
 * The first delivered owner keeps the conversation; the later event changes nothing of it, and is
 * kept here raw, for the operator: R2 `quarantine/<encoded id>/<sha256 of the body>.json` and a D1
 * `conversation_conflicts` row (the count an operator sees in GET /v1/conversations/:id).
 * Both writes are idempotent (the key is the body's hash), so an outbox replay adds nothing.
 */
import { conversationPrefix } from "../records/keys";
import { allShards, byHome, type ShardEnv } from "./shards";

const hex = (b: ArrayBuffer) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");

/** The prefix of a conversation's quarantined events (same encoding as `conversations/<id>/`). */
export const quarantinePrefix = (conversationId: string) => `quarantine/${conversationPrefix(conversationId).slice("conversations/".length)}`;

export interface Conflict {
  conversationId: string;
  /** The owner the later event resolved to (null: no one). */
  claimedUserId: string | null;
  /** The owner that keeps the conversation. */
  ownerUserId: string | null;
  receivedAt: number;
}

/** Keeps the event aside and counts it (`db`: the conversation's home shard); returns its R2 key. */
export async function quarantine(db: D1Database, bucket: R2Bucket, c: Conflict, raw: Uint8Array): Promise<string> {
  const key = `${quarantinePrefix(c.conversationId)}${hex(await crypto.subtle.digest("SHA-256", raw))}.json`;
  await bucket.put(key, raw, {
    httpMetadata: { contentType: "application/json" },
    customMetadata: { conversation_id: c.conversationId, ...(c.claimedUserId ? { user_id: c.claimedUserId } : {}) },
  });
  await db
    .prepare(
      `INSERT INTO conversation_conflicts (conversation_id, r2_key, claimed_user_id, owner_user_id, received_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (conversation_id, r2_key) DO NOTHING`,
    )
    .bind(c.conversationId, key, c.claimedUserId, c.ownerUserId, c.receivedAt)
    .run();
  return key;
}

export interface ConflictRow {
  r2_key: string;
  claimed_user_id: string | null;
  owner_user_id: string | null;
  received_at: number;
}

export async function conflictsOf(db: D1Database, conversationId: string): Promise<ConflictRow[]> {
  const { results } = await db
    .prepare("SELECT r2_key, claimed_user_id, owner_user_id, received_at FROM conversation_conflicts WHERE conversation_id = ? ORDER BY received_at, r2_key LIMIT 100")
    .bind(conversationId)
    .all<ConflictRow>();
  return results;
}

/**
 * Erases quarantined events: those of the given conversations (their owner is erased: the copies
 * hold the same conversation), or those a user claimed (the claimant is erased). Returns the R2
 * objects removed. R2 first, then the rows that name them. Rows are in each conversation's home
 * shard: by conversation, those shards; by claimant, every shard.
 */
export async function eraseQuarantined(env: ShardEnv, bucket: R2Bucket, by: { conversationIds?: string[]; claimedUserId?: string }): Promise<number> {
  const found = await Promise.all([
    ...(await byHome(env, by.conversationIds ?? [])).map(async (g) => {
      const rows: { conversation_id: string; r2_key: string }[] = [];
      // D1 allows 100 bound parameters per statement.
      for (let i = 0; i < g.ids.length; i += 90) {
        const part = g.ids.slice(i, i + 90);
        const r = await g.db
          .prepare(`SELECT conversation_id, r2_key FROM conversation_conflicts WHERE conversation_id IN (${part.map(() => "?").join(", ")})`)
          .bind(...part)
          .all<{ conversation_id: string; r2_key: string }>();
        rows.push(...r.results);
      }
      return { db: g.db, rows };
    }),
    ...(by.claimedUserId === undefined
      ? []
      : allShards(env).map(async (db) => {
          const r = await db
            .prepare("SELECT conversation_id, r2_key FROM conversation_conflicts WHERE claimed_user_id = ? LIMIT 1000")
            .bind(by.claimedUserId)
            .all<{ conversation_id: string; r2_key: string }>();
          return { db, rows: r.results };
        })),
  ]);
  const keys = [...new Set(found.flatMap((f) => f.rows.map((r) => r.r2_key)))];
  if (keys.length === 0) return 0;
  for (let i = 0; i < keys.length; i += 1000) await bucket.delete(keys.slice(i, i + 1000));
  for (const { db, rows } of found) {
    if (rows.length > 0) await db.batch(rows.map((r) => db.prepare("DELETE FROM conversation_conflicts WHERE conversation_id = ? AND r2_key = ?").bind(r.conversation_id, r.r2_key)));
  }
  return keys.length;
}
