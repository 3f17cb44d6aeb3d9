/**
 * Which D1 database holds what (docs/storage.md "Shards"). `DB` is the first shard; D1_SHARDS names
 * them all in order (default "DB"), each a D1 binding, every migration applied to each.
 *
 * - A user's conversations, search documents and directory row live in their *user shard*.
 * - Everything keyed by a conversation alone lives in its *home* shard: its entry in
 *   `conversation_shards` (who owns it), its audio row, its call failure, its quarantined events, and
 *   the conversation itself while no one owns it. The audio and the transcript arrive in either order
 *   and only the transcript names the owner, so they meet on the one database both can name.
 * - Tables of the whole deployment (forwarding's dead letters, imports, upgrades, shard_generations) stay in `DB`.
 *
 * Shards are added in *generations* (`generationSizes` records them in DB's
 * `shard_generations`): an id's candidate in generation g is the jump hash of the id over the shards
 * that existed in g. Rows already stored stay where they are (no mover): a write goes to the earliest
 * candidate that already holds the key, else the newest (src/storage/placement.ts); a read asks every
 * distinct candidate (`userShards`, `homeShards`: usually one, since jump hash keeps most ids in place).
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

const generations = new WeakMap<object, Promise<number[]>>();

/**
 * The shard count of each generation, cumulative (e.g. [1, 3, 5]): read once per env object (one per
 * isolate) from DB's `shard_generations`. A D1_SHARDS that extends the recorded list by names at its
 * end records them as a new generation; the first one ever seen is recorded as generation 1. Anything
 * else (a shard removed, reordered, renamed or inserted before the end) would re-place existing users
 * and is refused: every request fails loudly until the setting is put back (docs/storage.md "Shards").
 */
export function generationSizes(env: ShardEnv): Promise<number[]> {
  let sizes = generations.get(env);
  if (!sizes) {
    sizes = recordedGenerations(env);
    generations.set(env, sizes);
    // A failed read (or a refusal) is tried again by the next request, not cached.
    sizes.catch(() => generations.delete(env));
  }
  return sizes;
}

interface GenerationRow { generation: number; shards: string }

async function recordedGenerations(env: ShardEnv): Promise<number[]> {
  const names = shardNames(env);
  allShards(env); // every name is a D1 binding, or this throws
  const read = async () => {
    try {
      return (await env.DB.prepare("SELECT generation, shards FROM shard_generations ORDER BY generation").all<GenerationRow>()).results;
    } catch (err) {
      if (/no such table/.test(String(err))) throw new Error("D1 table shard_generations is missing: apply every migration to DB (0014_shard_generations.sql) before deploying");
      throw err;
    }
  };
  let rows = await read();
  const recorded = rows.flatMap((r) => r.shards.split(","));
  const refuse = (why: string) => {
    const msg = `D1_SHARDS ${JSON.stringify(names.join(","))} ${why}; the recorded shards are ${JSON.stringify(recorded.join(","))} (generations: ${rows.map((r) => r.shards).join(" | ")}). Shards may only be appended (docs/storage.md "Shards")`;
    console.error(JSON.stringify({ event: "d1_shards_refused", d1_shards: names.join(","), recorded: recorded.join(",") }));
    throw new Error(msg);
  };
  if (names.length < recorded.length) refuse(`drops ${recorded.slice(names.length).join(",")}`);
  const moved = recorded.findIndex((name, i) => names[i] !== name);
  if (moved !== -1) refuse(`has ${names[moved]} where ${recorded[moved]} was recorded (a shard removed, reordered or renamed)`);
  if (rows.length === 0 && names.length > 1) await refuseUnrecordedGrowth(env, names);
  if (names.length > recorded.length) {
    const next = (rows.at(-1)?.generation ?? 0) + 1;
    await env.DB.prepare("INSERT INTO shard_generations (generation, shards, recorded_at) VALUES (?, ?, ?) ON CONFLICT (generation) DO NOTHING")
      .bind(next, names.slice(recorded.length).join(","), Math.floor(Date.now() / 1000))
      .run();
    rows = await read();
    const now = rows.flatMap((r) => r.shards.split(","));
    // Another isolate recorded a different generation at the same time: the setting differs from what won.
    if (now.length !== names.length || now.some((name, i) => names[i] !== name)) refuse("differs from a generation recorded at the same time");
    // The first generation of a deployment is not news; a shard added later is.
    if (next > 1) console.log(JSON.stringify({ event: "d1_shards_generation_recorded", generation: next, shards: names.slice(recorded.length).join(",") }));
  }
  let total = 0;
  return rows.map((r) => (total += r.shards.split(",").length));
}

/**
 * The first record of a deployment that stored calls before generations existed: if DB holds users
 * but another named shard holds nothing, that shard was most likely added in this same deploy, and
 * recording it as generation 1 would re-place a share of everyone. Refused: deploy once with the
 * D1_SHARDS the data was written with, then append (docs/storage.md "Shards").
 */
async function refuseUnrecordedGrowth(env: ShardEnv, names: string[]): Promise<void> {
  const held = await Promise.all(
    allShards(env).map(async (db) => (await db.prepare("SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM conversation_shards) AS held").first<{ held: number }>())?.held === 1),
  );
  if (!held[0] || held.every((h) => h)) return;
  const empty = names.filter((_, i) => !held[i]);
  console.error(JSON.stringify({ event: "d1_shards_refused", d1_shards: names.join(","), recorded: "", empty: empty.join(",") }));
  throw new Error(
    `D1_SHARDS ${JSON.stringify(names.join(","))} is seen for the first time, DB already holds users and ${empty.join(",")} holds nothing: ` +
      `deploy once with the D1_SHARDS the data was written with (so it is recorded), then append the new shards (docs/storage.md "Shards")`,
  );
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

/**
 * The newest generation's candidate of a user, and of a conversation's home: where a new one is
 * placed (the jump hash over every shard). Reads never use these alone: see `userShards`, `homeShards`.
 */
export const userShardIndex = (env: ShardEnv, userId: string) => shardIndex(`user:${userId}`, allShards(env).length);
export const homeShardIndex = (env: ShardEnv, conversationId: string) => shardIndex(`conversation:${conversationId}`, allShards(env).length);

/**
 * The distinct candidates of a key, earliest generation first, given each generation's shard count
 * (cumulative, e.g. [1, 3, 5]). With jump hash most keys have one.
 */
export function candidateIndexes(key: string, sizes: readonly number[]): number[] {
  const out: number[] = [];
  for (const n of sizes) {
    const i = shardIndex(key, n);
    if (!out.includes(i)) out.push(i);
  }
  return out;
}

/** A user's candidate shard indexes, earliest generation first. */
export const userCandidates = async (env: ShardEnv, userId: string) => candidateIndexes(`user:${userId}`, await generationSizes(env));
/** A conversation's candidate home shard indexes, earliest generation first. */
export const homeCandidates = async (env: ShardEnv, conversationId: string) =>
  candidateIndexes(`conversation:${conversationId}`, await generationSizes(env));

/** Every shard that may hold a user's rows (read them all and merge), earliest generation first. */
export async function userShards(env: ShardEnv, userId: string): Promise<D1Database[]> {
  const dbs = allShards(env);
  return (await userCandidates(env, userId)).map((i) => dbs[i]!);
}

/** Every shard that may be a conversation's home (read them all and merge), earliest generation first. */
export async function homeShards(env: ShardEnv, conversationId: string): Promise<D1Database[]> {
  const dbs = allShards(env);
  return (await homeCandidates(env, conversationId)).map((i) => dbs[i]!);
}

/** Every shard that may hold a conversation's row: its owner's candidates, or its home candidates while no one owns it. */
export const ownerShards = (env: ShardEnv, conversationId: string, owner: string | null): Promise<D1Database[]> =>
  owner === null ? homeShards(env, conversationId) : userShards(env, owner);

/** Conversation ids grouped by every candidate home shard (only shards with ids), for one statement per shard. */
export async function byHome(env: ShardEnv, ids: Iterable<string>): Promise<{ db: D1Database; index: number; ids: string[] }[]> {
  const dbs = allShards(env);
  const sizes = await generationSizes(env);
  const groups = new Map<number, string[]>();
  for (const id of ids) {
    for (const i of candidateIndexes(`conversation:${id}`, sizes)) {
      let g = groups.get(i);
      if (!g) groups.set(i, (g = []));
      if (!g.includes(id)) g.push(id);
    }
  }
  return [...groups].map(([index, g]) => ({ db: dbs[index]!, index, ids: g }));
}

/** A row of the keyset every conversation list uses: (started_at, conversation_id). */
interface ByStart {
  started_at: number;
  conversation_id: string;
}

/** That keyset's order for mergePages: oldest first ("asc") or newest first ("desc"). */
export function byStart<T extends ByStart>(order: "asc" | "desc"): (a: T, b: T) => boolean {
  const first = (a: T, b: T) => a.started_at < b.started_at || (a.started_at === b.started_at && a.conversation_id < b.conversation_id);
  return order === "asc" ? first : (a, b) => first(b, a);
}

/**
 * A page of a user's conversations read from every shard that may hold them (usually one, in
 * parallel), merged in the keyset order the page was read in.
 */
export async function userPage<T extends ByStart>(env: ShardEnv, userId: string, order: "asc" | "desc", limit: number, read: (db: D1Database) => Promise<T[]>): Promise<T[]> {
  return mergePages(await Promise.all((await userShards(env, userId)).map(read)), byStart<T>(order), limit);
}

/** `read` on every shard that may hold a user's rows (in parallel), the answers concatenated. */
export async function onUserShards<T>(env: ShardEnv, userId: string, read: (db: D1Database) => Promise<T[]>): Promise<T[]> {
  return (await Promise.all((await userShards(env, userId)).map(read))).flat();
}

/** The first non-null answer of `read` over `dbs` (asked in parallel), in their order. */
export async function firstOf<T>(dbs: D1Database[], read: (db: D1Database) => Promise<T | null | undefined>): Promise<T | null> {
  for (const a of await Promise.all(dbs.map(read))) if (a !== null && a !== undefined) return a;
  return null;
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
