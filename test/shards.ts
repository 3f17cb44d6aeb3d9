/**
 * Tests that look at D1 rows directly find them where src/storage/shards.ts puts them, so the suite
 * runs unchanged on one shard or three (vitest.config.ts: POSTCALL_TEST_SHARDS). The suite's env has
 * one shard generation, so each id has one candidate: the newest (test/shard-growth.test.ts grows it).
 */
import { env } from "cloudflare:workers";
import { allShards, homeShardIndex, shardNames, userShardIndex } from "../src/storage/shards";
import { shardOfConversation } from "../src/storage/placement";

export const shardCount = () => allShards(env).length;
/** The shard of a conversation's entry, audio row, call failure and conflicts. */
export const homeDb = (conversationId: string) => allShards(env)[homeShardIndex(env, conversationId)]!;
/** The shard of a user's conversations and directory row. */
export const userDb = (userId: string) => allShards(env)[userShardIndex(env, userId)]!;
/** The shard that holds the conversation's row (its home when D1 has none yet). */
export const rowDb = async (conversationId: string) => (await shardOfConversation(env, conversationId)) ?? homeDb(conversationId);

/** The sum of a count(*) query's answer over every shard. */
export async function countEverywhere(sql: string, ...params: unknown[]): Promise<number> {
  let n = 0;
  for (const db of allShards(env)) n += (await db.prepare(sql).bind(...params).first<{ n: number }>())?.n ?? 0;
  return n;
}

/** The rows of a query run on every shard, one after the other. */
export async function rowsEverywhere<T = Record<string, unknown>>(sql: string, ...params: unknown[]): Promise<T[]> {
  const out: T[] = [];
  for (const db of allShards(env)) out.push(...(await db.prepare(sql).bind(...params).all<T>()).results);
  return out;
}

/** The binding name of a user's shard (to wrap that binding in a test). */
export const userShardName = (userId: string) => shardNames(env)[userShardIndex(env, userId)]!;
