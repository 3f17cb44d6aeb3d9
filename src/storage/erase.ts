/**
 * Removing conversations from D1 and R2, shared by DELETE /v1/users/:userId and retention.
 *
 * Order matters for retries: R2 objects first, D1 rows last. D1 is the index that names the R2 keys
 * (`conversations.transcript_key`, `audio.r2_key`), so if a run stops midway the rows that remain
 * still lead a retry to whatever was not yet deleted. Every step is idempotent.
 */
import { uncountStatements } from "./counters";
import { byHome, onEveryShard, userShards, type ShardEnv } from "./shards";
import { userDirectoryStatements } from "./users";
import { conversationPrefix, transcriptKey } from "../records/keys";
import { eraseQuarantined } from "./quarantine";

export interface EraseCounts {
  conversations: number;
  turns: number;
  audio: number;
  call_failures: number;
  r2_objects: number;
}

export const zeroCounts = (): EraseCounts => ({ conversations: 0, turns: 0, audio: 0, call_failures: 0, r2_objects: 0 });

export function addCounts(a: EraseCounts, b: EraseCounts): EraseCounts {
  return {
    conversations: a.conversations + b.conversations,
    turns: a.turns + b.turns,
    audio: a.audio + b.audio,
    call_failures: a.call_failures + b.call_failures,
    r2_objects: a.r2_objects + b.r2_objects,
  };
}

// D1 allows 100 bound parameters per statement; one is kept for the owner.
const IDS_PER_STATEMENT = 90;
// R2 deletes at most 1,000 keys per call.
const KEYS_PER_DELETE = 1000;

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");

async function listKeys(bucket: R2Bucket, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, cursor });
    for (const o of page.objects) keys.push(o.key);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return keys;
}

/**
 * Erases the given conversations (rows, search documents, audio rows, R2 objects), but only those that belong to
 * `owner` (a user id, or null for unattributed conversations) or that have no D1 row yet (an event
 * still in its owner's outbox). A conversation id that D1 attributes to someone else (its home
 * shard's `conversation_shards` entry) is left alone, so a caller can never erase another user's data
 * by naming its conversation.
 *
 * Shards (src/storage/shards.ts): the entries and audio rows are in each id's home shard, the rows in
 * the owner's shard (the homes, for unowned ones). The homes' part goes first and the rows last: a
 * row left by a run that stopped leads a retry back here, and without its entry is no one else's.
 */
export async function eraseConversations(
  env: ShardEnv,
  bucket: R2Bucket,
  ids: string[],
  owner: string | null,
  /** Wipes what a conversation's own `conversation:<id>` object holds of its audio (the durable link). */
  forgetAudio?: (conversationId: string) => Promise<unknown>,
  /**
   * Set by an erasure (retention passes nothing). Every conversation's object is asked, not only those
   * D1 knows to have audio: audio whose D1 write is still pending is linked only there, and would
   * otherwise be served, then written, after the erasure (retention does not need it: by then every
   * audio delivery is long done). And `record` enters the conversations in the erasure ledger before
   * anything of them is deleted, so a retry that finds them gone has not missed one.
   */
  erasure?: { record: (conversationIds: string[]) => Promise<void> },
): Promise<EraseCounts> {
  const counts = zeroCounts();
  for (const batch of chunks([...new Set(ids)], IDS_PER_STATEMENT)) {
    const homes = await Promise.all(
      (await byHome(env, batch)).map(async (g) => {
        const [entries, audio] = await g.db.batch<{ conversation_id: string; user_id?: string | null; key: string }>([
          g.db.prepare(`SELECT conversation_id, user_id FROM conversation_shards WHERE conversation_id IN (${placeholders(g.ids.length)})`).bind(...g.ids),
          g.db.prepare(`SELECT conversation_id, r2_key AS key FROM audio WHERE conversation_id IN (${placeholders(g.ids.length)})`).bind(...g.ids),
        ]);
        return { entries: entries!.results, audio: audio!.results };
      }),
    );
    const foreign = new Set(homes.flatMap((h) => h.entries.filter((e) => (e.user_id ?? null) !== owner).map((e) => e.conversation_id)));
    const mine = batch.filter((id) => !foreign.has(id));
    if (mine.length === 0) continue;
    await erasure?.record(mine);
    const audioRows = homes.flatMap((h) => h.audio).filter((r) => !foreign.has(r.conversation_id));
    // Every shard that may hold the rows: the owner's candidates, or (unowned) each id's home candidates.
    const homeGroups = await byHome(env, mine);
    const rowGroups = new Map<D1Database, string[]>(
      owner === null ? homeGroups.map((g) => [g.db, g.ids]) : (await userShards(env, owner)).map((db) => [db, mine]),
    );
    const conversationRows = (
      await Promise.all(
        [...rowGroups].map(([db, part]) =>
          db
            .prepare(`SELECT conversation_id, transcript_key AS key FROM conversations WHERE conversation_id IN (${placeholders(part.length)}) AND user_id IS ?`)
            .bind(...part, owner)
            .all<{ conversation_id: string; key: string }>(),
        ),
      )
    ).flatMap((r) => r.results);

    // Every R2 object of the conversation: its prefix, plus keys recorded in D1 that may live elsewhere
    // (the audio writer records its own key rather than promising the derived one).
    const keys = new Set<string>();
    const outside: string[] = [];
    for (const id of mine) {
      for (const k of await listKeys(bucket, conversationPrefix(id))) keys.add(k);
    }
    const recorded = [...conversationRows.map((r) => r.key), ...audioRows.map((r) => r.key), ...mine.map(transcriptKey)];
    for (const k of recorded) if (!keys.has(k) && !outside.includes(k)) outside.push(k);
    for (const k of outside) {
      if ((await bucket.head(k)) !== null) keys.add(k);
    }
    for (const part of chunks([...keys], KEYS_PER_DELETE)) await bucket.delete(part);
    counts.r2_objects += keys.size;
    // Later events for these conversations kept aside for the operator hold the same conversation.
    counts.r2_objects += await eraseQuarantined(env, bucket, { conversationIds: mine });
    // The audio's link also lives in the conversation's own object (written before the audio webhook's
    // 200). It goes before the D1 rows, which are what lead a retry back here.
    if (forgetAudio) {
      const withAudio = new Set(audioRows.map((r) => r.conversation_id));
      for (const id of mine) if (erasure !== undefined || withAudio.has(id)) await forgetAudio(id);
    }

    // Per shard: the homes' part (audio rows, waiting-for-audio rows, entries), and in the rows' shards
    // the rows, in one transaction with their counters, search documents (the index is contentless:
    // deleted by rowid) and the user directory (recomputed from what remains; its row goes when nothing does).
    const plan = new Map<D1Database, { home: string[]; rows: string[] }>();
    const at = (db: D1Database) => plan.get(db) ?? plan.set(db, { home: [], rows: [] }).get(db)!;
    for (const g of homeGroups) at(g.db).home.push(...g.ids);
    for (const [db, part] of rowGroups) at(db).rows.push(...part);
    const ordered = [...plan].sort(([, a], [, b]) => a.rows.length - b.rows.length);
    const now = Math.floor(Date.now() / 1000);
    for (const [db, { home, rows }] of ordered) {
      const h = placeholders(home.length);
      const r = placeholders(rows.length);
      const homePart =
        home.length === 0
          ? []
          : [
              db.prepare(`DELETE FROM audio WHERE conversation_id IN (${h})`).bind(...home),
              db.prepare(`DELETE FROM audio_pending WHERE conversation_id IN (${h})`).bind(...home),
              db.prepare(`DELETE FROM conversation_shards WHERE conversation_id IN (${h}) AND user_id IS ?`).bind(...home, owner),
            ];
      const mineRows = `conversation_id IN (${r}) AND user_id IS ?`;
      const rowPart =
        rows.length === 0
          ? []
          : [
              db.prepare(`SELECT coalesce(sum(turn_count), 0) AS n FROM conversations WHERE ${mineRows}`).bind(...rows, owner),
              ...uncountStatements(db, mineRows, [...rows, owner]),
              db.prepare(`DELETE FROM conversations_fts WHERE rowid IN (SELECT doc_id FROM conversations WHERE ${mineRows})`).bind(...rows, owner),
            ];
      // The delete of the rows themselves goes last but the directory's: its result is the count.
      const deleteRows = rows.length === 0 ? [] : [db.prepare(`DELETE FROM conversations WHERE ${mineRows}`).bind(...rows, owner)];
      const directory = rows.length === 0 || owner === null ? [] : userDirectoryStatements(db, owner, now);
      const results = await db.batch([...homePart, ...rowPart, ...deleteRows, ...directory]);
      if (home.length > 0) counts.audio += results[0]!.meta.changes;
      if (rows.length > 0) {
        counts.turns += (results[homePart.length]!.results[0] as { n: number } | undefined)?.n ?? 0;
        counts.conversations += results[homePart.length + rowPart.length]!.meta.changes;
      }
    }
  }
  return counts;
}

/** Call failures recorded for any of these phone numbers (as caller or callee), in every shard (each is in its conversation's home). */
export async function eraseCallFailures(env: ShardEnv, numbers: string[]): Promise<number> {
  let removed = 0;
  for (const batch of chunks([...new Set(numbers)], Math.floor(IDS_PER_STATEMENT / 2))) {
    const list = placeholders(batch.length);
    const changed = await onEveryShard(env, async (db) =>
      (await db.prepare(`DELETE FROM call_failures WHERE from_number IN (${list}) OR to_number IN (${list})`).bind(...batch, ...batch).run()).meta.changes,
    );
    removed += changed.reduce((a, b) => a + b, 0);
  }
  return removed;
}
