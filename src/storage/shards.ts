/**
 * Which D1 database holds what (docs/storage.md "Shards"). `DB` is the first shard; D1_SHARDS names
 * them all in order (default "DB"), each a D1 binding, every migration applied to each.
 *
 * - A user's conversations, search documents and directory row live in `userShard(user id)`.
 * - Everything keyed by a conversation alone lives in its *home* shard, `homeShard(conversation id)`:
 *   its entry in `conversation_shards` (who owns it, so a lookup by id goes to one shard, then to the
 *   owner's), its audio row, its call failure, its quarantined events, and the conversation itself
 *   while no one owns it. The audio and the transcript arrive in either order and only the transcript
 *   names the owner, so they meet on the one database both can name: the id's own hash.
 * - Tables of the whole deployment (forwarding's dead letters, imports, upgrades) stay in `DB`.
 *
 * Placement is a jump consistent hash of the id (stable across isolates and deploys); adding a shard
 * changes the place of about 1/N of the ids. There is no mover yet: rows already stored stay where
 * the old count put them and reads would miss them, so the count is chosen before the first call
 * (docs/storage.md "Shards").
 */
import type { Env } from "../lib/env";

/** What routing needs of the Worker's env: DB, the D1_SHARDS setting, and the bindings it names. */
export type ShardEnv = Pick<Env, "DB"> & { D1_SHARDS?: string };

const cache = new WeakMap<object, D1Database[]>();

/** The shards' binding names, validated: "DB" first, no repeats. */
export function shardNames(env: ShardEnv): string[] {
  const raw = env.D1_SHARDS === undefined || String(env.D1_SHARDS).trim() === "" ? "DB" : String(env.D1_SHARDS);
  const names = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (names[0] !== "DB") throw new Error(`D1_SHARDS must start with DB (the first shard), got ${JSON.stringify(raw)}`);
  if (new Set(names).size !== names.length) throw new Error(`D1_SHARDS names a binding twice: ${JSON.stringify(raw)}`);
  return names;
}

/** Every shard, in D1_SHARDS order (index 0 is DB). Parsed once per env object. */
export function allShards(env: ShardEnv): D1Database[] {
  let dbs = cache.get(env);
  if (!dbs) {
    dbs = shardNames(env).map((name) => {
      const db = (env as unknown as Record<string, unknown>)[name] as D1Database | undefined;
      if (!db || typeof db.prepare !== "function") {
        throw new Error(`D1_SHARDS names ${name}, which is not a D1 binding (add a [[d1_databases]] with binding = "${name}")`);
      }
      return db;
    });
    cache.set(env, dbs);
  }
  return dbs;
}

/** 64-bit FNV-1a of the id's UTF-8 bytes. */
function fnv1a64(id: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(id)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h;
}

/** Lamping and Veach's jump consistent hash: going from n to n+1 buckets moves only 1/(n+1) of the keys. */
export function jumpHash(key: bigint, buckets: number): number {
  let b = -1;
  let j = 0;
  let k = key;
  while (j < buckets) {
    b = j;
    k = (k * 2862933555777941757n + 1n) & 0xffffffffffffffffn;
    j = Math.floor((b + 1) * (2 ** 31 / (Number(k >> 33n) + 1)));
  }
  return b;
}

/** The shard index of an id among `n` shards. */
export function shardIndex(id: string, n: number): number {
  return n <= 1 ? 0 : jumpHash(fnv1a64(id), n);
}

export const userShardIndex = (env: ShardEnv, userId: string) => shardIndex(`user:${userId}`, allShards(env).length);
export const homeShardIndex = (env: ShardEnv, conversationId: string) => shardIndex(`conversation:${conversationId}`, allShards(env).length);

/** The shard holding a user's conversations and directory row. */
export const userShard = (env: ShardEnv, userId: string): D1Database => allShards(env)[userShardIndex(env, userId)]!;

/** The home shard of a conversation: its directory entry, audio, call failure, conflicts; the conversation itself while unowned. */
export const homeShard = (env: ShardEnv, conversationId: string): D1Database => allShards(env)[homeShardIndex(env, conversationId)]!;

/** Where a conversation's row lives: its owner's shard, or its home while no one owns it. */
export const ownerShard = (env: ShardEnv, conversationId: string, owner: string | null): D1Database =>
  owner === null ? homeShard(env, conversationId) : userShard(env, owner);

/** Conversation ids grouped by home shard (only shards with ids), for one statement per shard. */
export function byHome(env: ShardEnv, ids: Iterable<string>): { db: D1Database; index: number; ids: string[] }[] {
  const dbs = allShards(env);
  const groups = new Map<number, string[]>();
  for (const id of ids) {
    const i = homeShardIndex(env, id);
    let g = groups.get(i);
    if (!g) groups.set(i, (g = []));
    if (!g.includes(id)) g.push(id);
  }
  return [...groups].map(([index, g]) => ({ db: dbs[index]!, index, ids: g }));
}

/** Runs `read` on every shard in parallel; the answers in shard order. */
export function onEveryShard<T>(env: ShardEnv, read: (db: D1Database, index: number) => Promise<T>): Promise<T[]> {
  return Promise.all(allShards(env).map((db, i) => read(db, i)));
}

/**
 * Merges per-shard pages that are each sorted by `before` (a strict order: true when a comes first)
 * into one page of at most `limit`: the same keyset cursor continues every shard's page.
 */
export function mergePages<T>(pages: T[][], before: (a: T, b: T) => boolean, limit: number): T[] {
  const all = pages.flat();
  all.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
  return all.slice(0, limit);
}
