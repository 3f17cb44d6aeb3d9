/**
 * An erasure's record (GET /v1/erasures/:id), kept by the erased user's own object while the erasure
 * runs: its id, when it began, whether it reaches ElevenLabs, and its running totals, in the object's
 * key-value storage under `erasure` (so a DELETE that stops midway and is repeated continues the same
 * record, and its counts add up), mirrored to D1 `erasures` after every step (absolute values: a
 * replay changes nothing). The last step writes the finished record before the object is wiped (the
 * wipe takes the key-value entry with it), so a record is never left unfinished by a wipe that
 * happened. The record holds counts and times, and the user only as a keyed hash.
 *
 * A user's memory with one agent (MEMORY_SCOPE="agent") is erased as part of its user's erasure
 * (`partOf`): it keeps nothing here; its counts reach the user's record through the user's step.
 */
import type { Env } from "../../lib/env";
import { hashOf } from "../../memory/erasure-ledger";
import type { EraseOptions, EraseStep } from "../../memory/rpc";
import { addCounts, zeroCounts } from "../../storage/erase";
import { saveErasedConversations, saveErasure, type ErasureTotals } from "../../storage/erasures";

const KEY = "erasure";

export interface ErasureProgress {
  erasureId: string;
  /** Unix seconds: when the erasure began (the object's `erasing_since`). */
  beganAt: number;
  atSource: boolean;
  totals: ErasureTotals;
  /** False for a part of another object's erasure: no record of its own. */
  own: boolean;
}

const zeroTotals = (): ErasureTotals => ({ ...zeroCounts(), memoryRows: 0, phoneLinks: 0, scopes: 0, forwarded: 0 });

/** The erasure under way in this object, or a new one beginning at `beganAt`. */
export async function progressOf(storage: DurableObjectStorage, opts: EraseOptions, beganAt: number): Promise<ErasureProgress> {
  if (opts.partOf !== undefined) return { erasureId: opts.partOf, beganAt, atSource: opts.atSource, totals: zeroTotals(), own: false };
  const saved = await storage.get<ErasureProgress>(KEY);
  if (saved) return { ...saved, atSource: saved.atSource || opts.atSource };
  const fresh: ErasureProgress = { erasureId: `era_${crypto.randomUUID()}`, beganAt, atSource: opts.atSource, totals: zeroTotals(), own: true };
  await storage.put(KEY, fresh);
  return fresh;
}

function addStep(t: ErasureTotals, step: EraseStep): ErasureTotals {
  return {
    ...addCounts(t, step.counts),
    memoryRows: t.memoryRows + step.memoryRows,
    phoneLinks: t.phoneLinks + step.phoneLinks,
    scopes: t.scopes + step.scopes,
    forwarded: t.forwarded + step.forwarded,
  };
}

/** After a step: its counts join the totals, here and in D1; `finishedAt` once postcall's copies are all gone. */
export async function recordStep(env: Env, storage: DurableObjectStorage, userId: string, p: ErasureProgress, step: EraseStep, finishedAt: number | null): Promise<void> {
  if (!p.own) return;
  p.totals = addStep(p.totals, step);
  // Kept before D1 is written: if that fails, the repeated DELETE continues from these totals.
  await storage.put(KEY, p);
  await saveErasure(env.DB, {
    erasureId: p.erasureId,
    subjectHash: await hashOf(env, "user", userId),
    beganAt: p.beganAt,
    finishedAt,
    atSource: p.atSource,
    totals: p.totals,
  });
}

/** The ledger's entry for conversations about to be erased (written before anything of them is deleted). */
export const ledgerEntries = (env: Env, p: ErasureProgress, now: number) => async (conversationIds: string[]): Promise<void> => {
  const hashes = await Promise.all(conversationIds.map((id) => hashOf(env, "conversation", id)));
  await saveErasedConversations(env.DB, p.erasureId, hashes, now, p.atSource);
};
