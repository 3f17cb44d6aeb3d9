/**
 * DELETE /v1/users/:userId, Worker side: the user's object erases in bounded steps
 * (src/objects/user-memory/erasure.ts); this calls it until it is done and drops the isolate's
 * cached memories of the user in every scope.
 */
import type { Env } from "../lib/env";
import { addCounts, zeroCounts, type EraseCounts } from "../storage/erase";
import { contextCache } from "./context-cache";
import { userObject } from "./objects";

export interface ErasureReport {
  /** The erasure's record: GET /v1/erasures/:id. */
  erasureId: string;
  counts: EraseCounts;
  phoneLinks: number;
  memoryRows: number;
  unlinkedPhoneNumbers: string[];
}

/** Each step handles a bounded amount; this many steps cover tens of thousands of conversations. */
const MAX_ERASE_STEPS = 50;

/**
 * Erases a user: steps until done, or null when it did not finish in MAX_ERASE_STEPS (the caller
 * answers "repeat the request"; until then the user's object delivers nothing more). With `atSource`
 * (ERASE_AT_ELEVENLABS) each erased conversation is also queued for deletion at ElevenLabs.
 */
export async function eraseUser(env: Env, userId: string, opts: { atSource: boolean }): Promise<ErasureReport | null> {
  const stub = userObject(env, userId);
  const report: ErasureReport = { erasureId: "", counts: zeroCounts(), phoneLinks: 0, memoryRows: 0, unlinkedPhoneNumbers: [] };
  try {
    for (let i = 0; i < MAX_ERASE_STEPS; i++) {
      const step = await stub.erase(userId, { atSource: opts.atSource });
      report.erasureId = step.erasureId;
      report.counts = addCounts(report.counts, step.counts);
      report.phoneLinks += step.phoneLinks;
      report.memoryRows += step.memoryRows;
      report.unlinkedPhoneNumbers.push(...step.unlinkedPhoneNumbers);
      if (step.done) return report;
    }
    return null;
  } finally {
    // After the erasure, not only before: a context read in this isolate while it ran cached the
    // memory as it was, and would serve it after the answer for up to CONTEXT_CACHE_SECONDS.
    contextCache.forgetEveryScope(userId);
  }
}
