/**
 * The daily retention sweep (cron trigger, wrangler.toml). Each user's own alarm already expires
 * their conversations as they age; the sweep catches what no alarm is armed for: conversations
 * stored before RETENTION_DAYS was set (or before this version), and any object whose alarm was lost.
 * It asks each such user's object to apply retention (so the memory's recent list is trimmed too)
 * and erases unattributed conversations directly (they have no memory to update).
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { addCounts, eraseConversations, zeroCounts, type EraseCounts } from "../storage/erase";
import { expiredLoneAudio, expiredOfUser, expiredUnattributed, usersWithExpired } from "../storage/expiry";
import { ledgerObject, userObject } from "../memory/objects";

/** Users poked and unattributed conversations erased per run; the next run continues. */
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

  const users = await usersWithExpired(env.DB, cutoff, SWEEP_USERS);
  for (const userId of users) {
    const report = await userObject(env, userId).applyRetention();
    counts = addCounts(counts, report.counts);
    if (report.skipped === "no_memory") {
      // Rows whose user holds no memory (nothing to trim there): erase them here, or the sweep would
      // meet the same user every day and never get further.
      const expired = await expiredOfUser(env.DB, userId, cutoff, SWEEP_UNATTRIBUTED);
      counts = addCounts(counts, await eraseConversations(env.DB, env.AUDIO, expired, userId, forgetAudio));
    }
  }
  // Unattributed conversations, then audio whose transcript never came (no conversation row leads to it).
  for (const find of [expiredUnattributed, expiredLoneAudio]) {
    const expired = await find(env.DB, cutoff, SWEEP_UNATTRIBUTED);
    if (expired.length > 0) counts = addCounts(counts, await eraseConversations(env.DB, env.AUDIO, expired, null, forgetAudio));
  }
  return { users: users.length, counts };
}
