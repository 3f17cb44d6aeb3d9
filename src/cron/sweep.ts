/**
 * The daily retention sweep (cron trigger, wrangler.toml). Each user's own alarm already expires
 * their conversations as they age; the sweep catches what no alarm is armed for: conversations
 * stored before RETENTION_DAYS was set (or before this version), and any object whose alarm was lost.
 * It asks each such user's object to apply retention (so the memory's recent list is trimmed too),
 * and each agent-scoped memory of them that holds an expired conversation (MEMORY_SCOPE="agent": those
 * hold the detail; the user's own object then holds only the registry of scopes), and erases
 * unattributed conversations directly (they have no memory to update).
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { addCounts, eraseConversations, zeroCounts, type EraseCounts } from "../storage/erase";
import { expiredLoneAudio, expiredOfUser, expiredUnattributed, pruneAudioPending, usersAndAgentsWithExpired } from "../storage/expiry";
import { allShards } from "../storage/shards";
import { isE164 } from "../records/identity";
import { ledgerObject, scopedObject, userObject } from "../memory/objects";

/** (User, agent) pairs poked and unattributed conversations erased per run; the next run continues. */
const SWEEP_USERS = 200;
const SWEEP_UNATTRIBUTED = 200;

export interface SweepReport {
  users: number;
  counts: EraseCounts;
}

export async function sweepRetention(env: Env, nowMs = Date.now()): Promise<SweepReport> {
  const forgetAudio = (id: string) => ledgerObject(env, id).forgetConversation();
  const days = config(env).retentionDays;
  if (days === null) return { users: 0, counts: zeroCounts() };
  const cutoff = Math.floor(nowMs / 1000) - days * 86_400;
  let counts = zeroCounts();

  // Each shard in turn (src/storage/shards.ts): its users' conversations, its unowned ones, its lone audio.
  let users = 0;
  for (const db of allShards(env)) {
    const found = await usersAndAgentsWithExpired(db, cutoff, SWEEP_USERS);
    users += found.size;
    for (const [userId, agentIds] of found) {
      // The user's own object, then every agent's memory of them (a phone number's memory is never scoped).
      const objects = [userObject(env, userId), ...(isE164(userId) ? [] : agentIds.map((a) => scopedObject(env, userId, a)))];
      let continues = false;
      for (const o of objects) {
        const report = await o.applyRetention();
        counts = addCounts(counts, report.counts);
        // An object that has more to do continues from its alarm; one being erased is left to its erasure.
        continues ||= report.more || report.skipped === "erasing";
      }
      if (!continues) {
        // Rows no memory removed (the user holds none, or only the registry of their scopes): erase them
        // here, or the sweep would meet the same user every day and never get further.
        const expired = await expiredOfUser(db, userId, cutoff, SWEEP_UNATTRIBUTED);
        if (expired.length > 0) counts = addCounts(counts, await eraseConversations(env, env.AUDIO, expired, userId, forgetAudio));
      }
    }
    // Unattributed conversations, then audio whose transcript never came (no conversation leads to it).
    for (const find of [expiredUnattributed, expiredLoneAudio]) {
      const expired = await find(db, cutoff, SWEEP_UNATTRIBUTED);
      if (expired.length > 0) counts = addCounts(counts, await eraseConversations(env, env.AUDIO, expired, null, forgetAudio));
    }
  }
  return { users, counts };
}

/** Conversations forgotten per shard and run from `audio_pending` once past the health page's 30 days. */
const PRUNE_PENDING = 5_000;

/** The daily upkeep of what the health page reads (src/storage/health.ts): bounded deletes, every shard. */
export async function pruneHealth(env: Env, nowMs = Date.now()): Promise<number> {
  const before = Math.floor(nowMs / 1000) - 31 * 86_400;
  let n = 0;
  for (const db of allShards(env)) n += await pruneAudioPending(db, before, PRUNE_PENDING);
  return n;
}
