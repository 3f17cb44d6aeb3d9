/**
 * The daily retention sweep (cron trigger, wrangler.toml). Each user's own alarm already expires
 * their conversations as they age; the sweep catches what no alarm is armed for: conversations
 * stored before RETENTION_DAYS was set (or before this version), and any object whose alarm was lost.
 * It asks each such user's object to apply retention (so the memory's recent list is trimmed too)
 * and erases unattributed conversations directly (they have no memory to update).
 */
import { config } from "../config";
import type { Env } from "../env";
import { addCounts, eraseConversations, zeroCounts, type EraseCounts } from "../storage/erase";
import { ownerOf, userMemory } from "./route";

/** Users poked and unattributed conversations erased per run; the next run continues. */
const SWEEP_USERS = 200;
const SWEEP_UNATTRIBUTED = 200;

export interface SweepReport {
  users: number;
  counts: EraseCounts;
}

export async function sweepRetention(env: Env, nowMs = Date.now()): Promise<SweepReport> {
  const forgetAudio = (id: string) => ownerOf(env, null, id).forgetConversation(id);
  const days = config(env).retentionDays;
  if (days === null) return { users: 0, counts: zeroCounts() };
  const cutoff = Math.floor(nowMs / 1000) - days * 86_400;
  let counts = zeroCounts();

  const { results: users } = await env.DB.prepare(
    "SELECT DISTINCT user_id FROM conversations WHERE started_at < ? AND user_id IS NOT NULL LIMIT ?",
  )
    .bind(cutoff, SWEEP_USERS)
    .all<{ user_id: string }>();
  for (const { user_id } of users) {
    const report = await userMemory(env, user_id).applyRetention();
    counts = addCounts(counts, report.counts);
    if (report.skipped === "no_memory") {
      // Rows whose user holds no memory (nothing to trim there): erase them here, or the sweep would
      // meet the same user every day and never get further.
      const { results } = await env.DB.prepare("SELECT conversation_id FROM conversations WHERE user_id = ? AND started_at < ? LIMIT ?")
        .bind(user_id, cutoff, SWEEP_UNATTRIBUTED)
        .all<{ conversation_id: string }>();
      counts = addCounts(counts, await eraseConversations(env.DB, env.AUDIO, results.map((r) => r.conversation_id), user_id, forgetAudio));
    }
  }

  const { results: orphans } = await env.DB.prepare(
    "SELECT conversation_id FROM conversations WHERE user_id IS NULL AND started_at < ? LIMIT ?",
  )
    .bind(cutoff, SWEEP_UNATTRIBUTED)
    .all<{ conversation_id: string }>();
  if (orphans.length > 0) {
    counts = addCounts(counts, await eraseConversations(env.DB, env.AUDIO, orphans.map((r) => r.conversation_id), null, forgetAudio));
  }
  // Audio whose transcript never came (or whose conversation was erased or expired before the audio
  // arrived): no conversation row leads to it, so neither an alarm nor the queries above ever would.
  // Audio has no start time; the time it was stored stands in for it.
  const { results: lone } = await env.DB.prepare(
    `SELECT conversation_id FROM audio a WHERE stored_at < ?
     AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.conversation_id = a.conversation_id) LIMIT ?`,
  )
    .bind(cutoff, SWEEP_UNATTRIBUTED)
    .all<{ conversation_id: string }>();
  if (lone.length > 0) {
    counts = addCounts(counts, await eraseConversations(env.DB, env.AUDIO, lone.map((r) => r.conversation_id), null, forgetAudio));
  }
  return { users: users.length, counts };
}
