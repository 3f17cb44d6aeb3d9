/**
 * Erasing a user everywhere (DELETE /v1/users/:userId), as named steps. Each call of `eraseStep`
 * does a bounded amount and says whether it is done; every step is idempotent, so a crash at any
 * point can be retried to completion. The order:
 *
 *   1. freeze          no more deliveries from this object; the alarm is cancelled
 *   2. unlinkNumbers   the user's numbers: the truth in each number's object before the reverse entry here
 *   3. releaseNumber   when this object is itself a number: tell its owner it is gone
 *   3b. eraseScopes    the user's memories with each agent (MEMORY_SCOPE="agent", registered in
 *                      memory_scopes here), each erased to completion, then its registry row
 *   4. erasePending    conversations still in the outbox (they may be half delivered)
 *   5. eraseDelivered  every conversation D1 attributes to the user, R2 before D1 rows
 *   5b. eraseClaimed   conversations that claimed the user without proof (stored unattributed), and
 *                      events for others' conversations kept aside under the user's name (quarantine)
 *   6. announce        forwarding: the user's dead letters go, user.erased goes to FORWARD_QUEUE (once
 *                      per erasure: a scoped memory, erased as part of its user's erasure, announces nothing)
 *   7. record          the erasure's record, finished (erasure-record.ts; D1 `erasures`)
 *   8. wipe            this object last: until then it is what names the links, scopes and pending
 *                      conversations (the recall index, fact history and every other table go with it;
 *                      from step 1 on, recall answers nothing)
 *   9. tombstone       what outlasts the wipe (src/objects/shared/tombstone.ts): the time the erasure began, so
 *                      a late event for an earlier conversation is dropped, forever (the erasure mark), and
 *                      the conversations it took that started in or after that second; then the calls made
 *                      since the erasure began (kept aside meanwhile) are remembered anew
 *
 * Every conversation erased (steps 4, 5, 5b) is first entered in the erasure ledger (D1
 * `erased_conversations`, by keyed hash), and its own ledger object keeps its erasure mark and, with
 * ERASE_AT_ELEVENLABS, queues its deletion at ElevenLabs. Every step adds its counts to the erasure's
 * record (erasure-record.ts). Steps that erase what other modules keep for the user slot in before
 * `wipe`; whatever lives in this object's own SQLite goes with the wipe.
 */
import type { Env } from "../../lib/env";
import { isE164 } from "../../records/identity";
import { addCounts, eraseCallFailures, eraseConversations, zeroCounts, type EraseCounts } from "../../storage/erase";
import { conversationsOfUser, unverifiedClaimsOf } from "../../storage/expiry";
import { eraseFailuresOfUser } from "../../storage/forwarding";
import { eraseQuarantined } from "../../storage/quarantine";
import { announceErasure, dropForwards } from "../shared/forwarding";
import { ledgerObject, phoneObject, scopedObject, userObject } from "../../memory/objects";
import { ownerOfRecord, type MemoryRecord } from "../../records/payload";
import { isDuplicate, markSeen } from "../shared/dedupe";
import { deferredConversations, dropConversations, enqueue, pendingConversations, type DeferredConversation } from "../shared/outbox";
import { forgetPhone, listPhones, ownerRow } from "./phone-links";
import type { EraseOptions, EraseStep, RecordResult } from "../../memory/rpc";
import { LIMITS } from "../shared/limits";
import { erasingSince } from "../shared/tables";
import type { Tombstones } from "../shared/tombstone";
import { ledgerEntries, progressOf, recordStep, type ErasureProgress } from "./erasure-record";

export interface ErasureContext {
  env: Env;
  storage: DurableObjectStorage;
  /** Whether this object has any tables (an object never written has nothing of its own to erase). */
  hasSchema(): boolean;
  /** Waits for a delivery run under way to finish. */
  settle(): Promise<void>;
  /** Rows this object holds now (what the wipe would report). */
  rows(): number;
  /** Drops every table and the alarm; returns the rows it held. */
  wipe(): Promise<number>;
  /**
   * After the wipe: the tombstone and erasure mark as of `erasedAt` (with `held`, the conversations
   * taken that started at or after it), then the deferred calls remembered anew.
   */
  tombstone(erasure: { erasedAt: number; held: string[]; deferred: DeferredConversation[] }): Promise<void>;
  /** Tells the object that what a read serves changed (src/objects/user-memory/user-memory.ts `served`); called before the next await. */
  changed(): void;
}

/** What every batch of erased conversations needs: the ledger's entries first, then each one's own object (its mark, and its deletion at ElevenLabs). */
interface Erasing {
  now: number;
  progress: ErasureProgress;
}

function eraseBatch(ctx: ErasureContext, e: Erasing, ids: string[], owner: string | null): Promise<EraseCounts> {
  const forget = (id: string) => ledgerObject(ctx.env, id).forgetConversation({ erased: true, atSource: e.progress.atSource });
  return eraseConversations(ctx.env, ctx.env.AUDIO, ids, owner, forget, { record: ledgerEntries(ctx.env, e.progress, e.now) });
}

async function freeze(ctx: ErasureContext, now: number): Promise<void> {
  ctx.storage.sql.exec("UPDATE upkeep SET erasing_since = coalesce(erasing_since, ?) WHERE id = 1", now);
  // From here reads serve nothing of the user: they asked to be forgotten, and the steps may take a while.
  ctx.changed();
  await ctx.storage.deleteAlarm();
  await ctx.settle();
}

/** Returns false while numbers remain (more than one step's worth). */
async function unlinkNumbers(ctx: ErasureContext, userId: string, now: number, step: EraseStep): Promise<boolean> {
  const phones = listPhones(ctx.storage.sql, LIMITS.unlinkBatch);
  for (const { phone_number: phone } of phones) {
    const { removed } = await phoneObject(ctx.env, phone).clearOwner(userId, now, "erasure");
    if (removed) step.phoneLinks++;
    step.counts.call_failures += await eraseCallFailures(ctx.env, [phone]);
    forgetPhone(ctx.storage.sql, phone);
    step.unlinkedPhoneNumbers.push(phone);
  }
  return phones.length < LIMITS.unlinkBatch;
}

async function releaseNumber(ctx: ErasureContext, userId: string, now: number, step: EraseStep): Promise<void> {
  const owner = ownerRow(ctx.storage.sql);
  if (!owner?.user_id) return;
  ctx.storage.sql.exec("UPDATE phone_owner SET user_id = NULL, linked_at = max(linked_at, ?), via = 'erasure' WHERE id = 1", now);
  ctx.changed();
  await userObject(ctx.env, owner.user_id).removePhone(userId, now);
  step.phoneLinks++;
}

/** Steps a scoped memory may take before this call stops and the caller repeats (each step is bounded). */
const SCOPE_STEPS_PER_CALL = 5;

/** Returns false while scopes remain. */
async function eraseScopes(ctx: ErasureContext, userId: string, e: Erasing, step: EraseStep): Promise<boolean> {
  const sql = ctx.storage.sql;
  const agents = sql
    .exec<{ agent_id: string }>("SELECT agent_id FROM memory_scopes ORDER BY agent_id LIMIT ?", LIMITS.scopeBatch)
    .toArray()
    .map((r) => r.agent_id);
  for (const agentId of agents) {
    const scoped = scopedObject(ctx.env, userId, agentId);
    for (let i = 0; ; i++) {
      if (i === SCOPE_STEPS_PER_CALL) return false;
      // Part of this erasure: the scoped memory keeps no record and announces nothing of its own.
      const s = await scoped.erase(userId, { atSource: e.progress.atSource, partOf: e.progress.erasureId });
      step.counts = addCounts(step.counts, s.counts);
      step.memoryRows += s.memoryRows;
      if (s.done) break;
    }
    sql.exec("DELETE FROM memory_scopes WHERE agent_id = ?", agentId);
    step.scopes++;
  }
  return agents.length < LIMITS.scopeBatch;
}

async function erasePending(ctx: ErasureContext, userId: string, e: Erasing): Promise<EraseCounts> {
  const pending = pendingConversations(ctx.storage.sql);
  if (pending.length === 0) return zeroCounts();
  const counts = await eraseBatch(ctx, e, pending, userId);
  dropConversations(ctx.storage);
  return counts;
}

/** Returns whether D1 holds nothing more of the user. */
async function eraseDelivered(ctx: ErasureContext, userId: string, e: Erasing, step: EraseStep): Promise<boolean> {
  for (let batch = 0; batch < LIMITS.eraseBatchesPerCall; batch++) {
    const ids = await conversationsOfUser(ctx.env, userId, LIMITS.eraseBatch);
    if (ids.length > 0) step.counts = addCounts(step.counts, await eraseBatch(ctx, e, ids, userId));
    if (ids.length < LIMITS.eraseBatch) return true;
  }
  return false;
}

/** Returns whether D1 holds nothing more that claims the user. */
async function eraseClaimed(ctx: ErasureContext, userId: string, e: Erasing, step: EraseStep): Promise<boolean> {
  const ids = await unverifiedClaimsOf(ctx.env, userId, LIMITS.eraseBatch);
  // Unattributed rows: their owner is no one (null), which is what eraseConversations checks.
  if (ids.length > 0) step.counts = addCounts(step.counts, await eraseBatch(ctx, e, ids, null));
  step.counts.r2_objects += await eraseQuarantined(ctx.env, ctx.env.AUDIO, { claimedUserId: userId });
  return ids.length < LIMITS.eraseBatch;
}

/**
 * The conversations this object held that started in or after the second the erasure began (`since`):
 * the start-time rule alone would let their redelivery back in. Newest first, so the memory's
 * compaction (which keeps the newest) never lost one.
 */
function heldSince(sql: SqlStorage, since: number): string[] {
  return sql
    .exec<{ conversation_id: string }>("SELECT conversation_id FROM conversations WHERE started_at >= ? ORDER BY started_at DESC LIMIT 1000", since)
    .toArray()
    .map((r) => r.conversation_id);
}

/** One step of erasing `userId` (this object's user). Call until `done`. */
export async function eraseStep(ctx: ErasureContext, userId: string, opts: EraseOptions): Promise<EraseStep> {
  const now = Math.floor(Date.now() / 1000);
  if (ctx.hasSchema()) await freeze(ctx, now);
  const progress = await progressOf(ctx.storage, opts, (ctx.hasSchema() ? erasingSince(ctx.storage.sql) : null) ?? now);
  const e: Erasing = { now, progress };
  const step: EraseStep = {
    done: false, counts: zeroCounts(), phoneLinks: 0, unlinkedPhoneNumbers: [], memoryRows: 0, erasureId: progress.erasureId, scopes: 0, forwarded: 0,
  };
  if (!(await erasePrevious(ctx, userId, e, step))) {
    await recordStep(ctx.env, ctx.storage, userId, progress, step, null);
    return step;
  }
  await eraseFailuresOfUser(ctx.env.DB, userId);
  // Read before the wipe: when the erasure began, and what it took that started since.
  const erasedAt = (ctx.hasSchema() ? erasingSince(ctx.storage.sql) : null) ?? progress.beganAt;
  const held = ctx.hasSchema() ? heldSince(ctx.storage.sql, erasedAt) : [];
  // Only the user's own object, and only one that held something: a user postcall never knew was never forwarded.
  if (ctx.hasSchema() && progress.own) step.forwarded = await announceErasure(ctx.env, userId, erasedAt);
  // The finished record before the wipe (which takes the running totals with it).
  await recordStep(ctx.env, ctx.storage, userId, progress, { ...step, memoryRows: step.memoryRows + ctx.rows() }, Math.floor(Date.now() / 1000));
  // The calls kept aside since the erasure began, read at the last moment: a call arriving during the
  // awaits above is among them.
  const deferred = ctx.hasSchema() ? deferredConversations(ctx.storage.sql) : [];
  step.memoryRows += await ctx.wipe();
  await ctx.tombstone({ erasedAt, held, deferred });
  step.done = true;
  return step;
}

/** Steps 1 to 5b; returns false while more remains (the caller repeats). */
async function erasePrevious(ctx: ErasureContext, userId: string, e: Erasing, step: EraseStep): Promise<boolean> {
  if (ctx.hasSchema()) {
    // Events not yet handed to the Queue are not sent: the user asked to be forgotten.
    dropForwards(ctx.storage);
    if (!(await unlinkNumbers(ctx, userId, e.now, step))) return false;
    await releaseNumber(ctx, userId, e.now, step);
    if (!(await eraseScopes(ctx, userId, e, step))) return false;
    step.counts = addCounts(step.counts, await erasePending(ctx, userId, e));
  }
  // A user id that is a phone number: the call failures recorded for that number are theirs too.
  if (isE164(userId)) step.counts.call_failures += await eraseCallFailures(ctx.env, [userId]);
  if (!(await eraseDelivered(ctx, userId, e, step))) return false;
  return eraseClaimed(ctx, userId, e, step);
}

/**
 * Whether an erasure took this conversation, so that it is dropped rather than stored again:
 *  - it started before this object was erased (the tombstone, then the erasure mark: forever);
 *  - the erasure took it though it started in or after that second (the mark's `held`);
 *  - this is a number's object, the call is known only by the number, it started before a user the
 *    number was linked to was erased, and the conversation's own ledger says an erasure took it.
 * Only the last asks another object, and only for such a call: the common case reads nothing but
 * this object's own cached tombstone and mark.
 */
export async function takenByAnErasure(env: Env, tombstones: Tombstones, sql: SqlStorage | null, r: MemoryRecord): Promise<boolean> {
  if (tombstones.erases(r.startedAt) || (await tombstones.held(r.conversationId))) return true;
  const linked = tombstones.linkedErasedAt();
  if (linked === null || r.userIdSource !== "phone_number" || r.startedAt >= linked) return false;
  if (sql !== null && isDuplicate(sql, "post_call_transcription", r.conversationId)) return false;
  return ledgerObject(env, r.conversationId).wasErased();
}

/**
 * A transcription reaching an object while its erasure is under way: dropped when its conversation
 * started before the erasure began (it is part of what is being erased), else kept aside as a
 * `deferred` outbox item (neither remembered nor delivered) to be remembered once the wipe is done
 * (step 7). When no erasure is under way: whether the transcription is a redelivery (dedupe.ts), which the
 * caller asks next (nothing it does before its own transaction can change the answer: no await).
 */
export function recordDuringErasure(
  storage: DurableObjectStorage,
  input: { record: MemoryRecord; raw: Uint8Array; receivedAt: number },
): RecordResult | boolean {
  const sql = storage.sql;
  const { record: r, raw, receivedAt } = input;
  // One statement for both questions every transcription asks: is an erasure under way, is this a redelivery.
  const { since, duplicate } = sql
    .exec<{ since: number | null; duplicate: number }>(
      `SELECT (SELECT erasing_since FROM upkeep WHERE id = 1) AS since,
              EXISTS (SELECT 1 FROM seen WHERE kind = 'post_call_transcription' AND conversation_id = ?) AS duplicate`,
      r.conversationId,
    )
    .one();
  if (since === null) return duplicate === 1;
  if (r.startedAt < since) return { duplicate: false, dropped: "erased" };
  if (duplicate === 1) return { duplicate: true };
  storage.transactionSync(() => {
    markSeen(sql, "post_call_transcription", r.conversationId, receivedAt);
    enqueue(sql, { kind: "deferred", user: ownerOfRecord(r), receivedAt }, r.conversationId, receivedAt, { payload: raw });
  });
  return { duplicate: false };
}
