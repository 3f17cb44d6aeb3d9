/**
 * Retention (RETENTION_DAYS): removing the conversations an object owns once they are older than
 * the setting, from D1 and R2 and from the recent list here. A user's object removes the user's
 * conversations (by user id); a `conversation:<id>` object its own unattributed conversation, and
 * then wipes itself. Counters, first/last call times and facts stay: they are the memory, not the
 * conversations. The last call's summary goes once the last call itself has expired.
 *
 * The object's alarm is armed for (oldest conversation's start + RETENTION_DAYS); the daily sweep
 * (src/cron/sweep.ts) catches objects whose alarm was never armed.
 */
import { config } from "../../lib/config";
import type { Env } from "../../lib/env";
import { addCounts, eraseConversations, zeroCounts } from "../../storage/erase";
import { expiredOfUserEverywhere, expiredUnattributedAmong, oldestStartOfUser, oldestUnattributedStartAmong } from "../../storage/expiry";
import { seenTranscriptions } from "./dedupe";
import { ledgerObject } from "../../memory/objects";
import type { RetentionReport } from "../../memory/rpc";
import { scheduleAlarm } from "./outbox";
import { LIMITS } from "./limits";
import { retentionAnchor, setRetentionAnchor, upkeepOf } from "./tables";

export interface RetentionContext {
  env: Env;
  storage: DurableObjectStorage;
  /** The memory's user, or null for a conversation's ledger (which expires only its own conversation). */
  owner(): string | null;
  /** Wipes this object (a conversation's ledger, once its conversation has expired). */
  forgetOwn(): Promise<unknown>;
  /** Drops what the object itself keeps of conversations that started before `cutoff` (a memory's detail). */
  forgetBefore?(cutoff: number): void;
  /**
   * Tells the object that what it holds changed (src/objects/user-memory/user-memory.ts `served`): called right
   * after the local write, before the next await, so a read arriving meanwhile never sees the old copy.
   */
  changed(): void;
}

export interface ObjectRetention extends RetentionContext {
  /** Whether the object has any tables. */
  exists(): boolean;
}

/** When retention cannot reach D1 or R2, the alarm tries again after this long. */
const RETENTION_RETRY_MS = 5 * 60 * 1000;

/**
 * Applies retention to the object now (with `force`, whatever the anchor says: the daily sweep),
 * then arms the alarm for what remains: at once when there is more than one call's worth, else
 * when the next conversation expires.
 */
export async function applyRetention(ctx: ObjectRetention, nowMs: number, force: boolean): Promise<RetentionReport> {
  const days = config(ctx.env).retentionDays;
  if (days === null) return { counts: zeroCounts(), more: false, skipped: "off" };
  if (!ctx.exists()) return { counts: zeroCounts(), more: false, skipped: "no_memory" };
  const { erasingSince: erasing, retentionAnchor: anchor } = upkeepOf(ctx.storage.sql);
  if (erasing !== null) return { counts: zeroCounts(), more: false, skipped: "erasing" };
  if (!force && (anchor === null || anchor >= Math.floor(nowMs / 1000) - days * 86_400)) {
    // Nothing can have expired: the anchor just read says when to look again.
    const due = dueMs(anchor, days);
    if (due !== null) await scheduleAlarm(ctx.storage, due);
    return { counts: zeroCounts(), more: false };
  }
  let report: RetentionReport;
  try {
    report = await expire(ctx, nowMs, days);
  } finally {
    ctx.changed();
  }
  const due = report.more ? nowMs : ctx.exists() ? retentionDueMs(ctx.storage.sql, days) : null;
  if (due !== null) await scheduleAlarm(ctx.storage, due);
  return report;
}

/** The alarm's share: retention when due; a failure is retried by the alarm later rather than thrown. */
export async function retentionFromAlarm(ctx: ObjectRetention, nowMs: number): Promise<void> {
  try {
    await applyRetention(ctx, nowMs, false);
  } catch (err) {
    console.warn(`retention failed: ${err instanceof Error ? err.message : String(err)}`);
    await scheduleAlarm(ctx.storage, nowMs + RETENTION_RETRY_MS);
  }
}

/** When retention is next due (ms) for an object whose oldest delivered conversation started at `anchor`. */
const dueMs = (anchor: number | null, days: number): number | null => (anchor === null ? null : (anchor + days * 86_400) * 1000);

/** When retention is next due (ms), or null when nothing delivered is left to expire. */
export function retentionDueMs(sql: SqlStorage, days: number): number | null {
  return dueMs(retentionAnchor(sql), days);
}

/**
 * Removes what has expired, at most LIMITS.eraseBatchesPerCall batches (`more` says whether to
 * continue). applyRetention calls it once the anchor says something may have expired (or forced).
 */
async function expire(ctx: RetentionContext, nowMs: number, days: number): Promise<RetentionReport> {
  const { env, storage } = ctx;
  const sql = storage.sql;
  const cutoff = Math.floor(nowMs / 1000) - days * 86_400;
  const owner = ctx.owner();
  // Unattributed conversations: only the ones this object recorded (never "every row without a user").
  const own = owner === null ? seenTranscriptions(sql, LIMITS.eraseBatch) : [];
  if (owner === null && own.length === 0) {
    setRetentionAnchor(sql, null);
    return { counts: zeroCounts(), more: false };
  }
  const select = (limit: number) =>
    owner !== null ? expiredOfUserEverywhere(env, owner, cutoff, limit) : expiredUnattributedAmong(env, own, cutoff, limit);
  // A `conversation:<id>` object is itself where its audio link lives: forgetting it through a call to
  // itself would wipe this object under the run. It is forgotten below, once the run is done.
  const forgetAudio = owner === null ? undefined : (id: string) => ledgerObject(env, id).forgetConversation();

  let counts = zeroCounts();
  let drained = false;
  for (let batch = 0; batch < LIMITS.eraseBatchesPerCall; batch++) {
    const expired = await select(LIMITS.eraseBatch);
    if (expired.length > 0) counts = addCounts(counts, await eraseConversations(env, env.AUDIO, expired, owner, forgetAudio));
    if (expired.length < LIMITS.eraseBatch) {
      drained = true;
      break;
    }
  }
  if (ctx.forgetBefore) storage.transactionSync(() => ctx.forgetBefore!(cutoff));
  ctx.changed();
  if (!drained) return { counts, more: true };

  const oldest = owner !== null ? await oldestStartOfUser(env, owner) : await oldestUnattributedStartAmong(env, own);
  if (owner === null && oldest === null && counts.conversations > 0) {
    // Its conversation has expired: nothing this object holds is worth keeping (as after an erasure).
    await ctx.forgetOwn();
    return { counts, more: false };
  }
  setRetentionAnchor(sql, oldest);
  return { counts, more: false };
}
