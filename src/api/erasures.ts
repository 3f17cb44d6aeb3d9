/**
 * The record of every erasure, for the operator and the auditor they answer to: GET /v1/erasures
 * (newest first, keyset pages; `?user_id=` finds one user's, hashed the way the ledger hashes it) and
 * GET /v1/erasures/:erasureId. API_KEY only: whether an id was ever erased is not for AGENT_API_KEY or
 * any webhook to learn (src/index.ts keeps these routes off AGENT_ROUTES).
 *
 * A record holds times, counts per store and states, and the user only as the ledger's keyed hash
 * (`subject`): nothing in it names the user or their conversations.
 */
import type { Env } from "../lib/env";
import { json, notFound } from "../lib/errors";
import { iso } from "../lib/time";
import { hashesOf } from "../memory/erasure-ledger";
import { checkUserId } from "../records/identity";
import { listErasures as listRows, readErasure, sourceCounts, type ErasureRow, type SourceCounts } from "../storage/erasures";
import { decodeKeyset, encodeKeyset, pageSize } from "./cursor";

/**
 * erasing: postcall's copies are still being removed (a DELETE to repeat); deleting_at_elevenlabs:
 * postcall's are gone, ElevenLabs' deletions are still being retried; done; done_with_failures:
 * ElevenLabs refused some deletions for good (`elevenlabs.failed`).
 */
type ErasureState = "erasing" | "deleting_at_elevenlabs" | "done" | "done_with_failures";

function stateOf(r: ErasureRow, s: SourceCounts | undefined): ErasureState {
  if (r.finished_at === null) return "erasing";
  if (r.at_source === 1 && (s?.pending ?? 0) > 0) return "deleting_at_elevenlabs";
  return (s?.failed ?? 0) > 0 ? "done_with_failures" : "done";
}

function view(r: ErasureRow, s: SourceCounts | undefined) {
  return {
    erasure_id: r.erasure_id,
    subject: r.subject_hash,
    state: stateOf(r, s),
    began_at: iso(r.began_at),
    finished_at: iso(r.finished_at),
    updated_at: iso(r.updated_at),
    // Conversations the ledger holds for this erasure (in D1, or still in an outbox when it began).
    conversations_erased: s?.erased ?? 0,
    deleted: {
      memory_rows: r.memory_rows,
      d1: { conversations: r.conversations, turns: r.turns, audio: r.audio, call_failures: r.call_failures },
      r2_objects: r.r2_objects,
      phone_links: r.phone_links,
      scopes: r.scopes,
    },
    forwarded: { user_erased: r.forwarded },
    elevenlabs: {
      requested: r.at_source === 1,
      done: s?.done ?? 0,
      failed: s?.failed ?? 0,
      pending: s?.pending ?? 0,
      // The last HTTP status among those not deleted yet (0: no API key, or ElevenLabs unreachable).
      last_status: s?.last_status ?? null,
    },
  };
}

export async function listErasures(env: Env, url: URL): Promise<Response> {
  const limit = pageSize(url.searchParams.get("limit"));
  const raw = url.searchParams.get("cursor");
  const userId = url.searchParams.get("user_id");
  const subjects = userId === null ? null : await hashesOf(env, "user", checkUserId(userId, "`user_id`"));
  const rows = await listRows(env.DB, { limit: limit + 1, after: raw === null ? null : decodeKeyset(raw), subjects });
  const page = rows.slice(0, limit);
  const counts = await sourceCounts(env.DB, page.map((r) => r.erasure_id));
  const last = page[page.length - 1];
  return json({
    erasures: page.map((r) => view(r, counts.get(r.erasure_id))),
    next_cursor: rows.length > limit && last ? encodeKeyset(last.began_at, last.erasure_id) : null,
  });
}

export async function getErasure(env: Env, erasureId: string): Promise<Response> {
  const row = /^era_[0-9a-f-]{36}$/.test(erasureId) ? await readErasure(env.DB, erasureId) : null;
  if (row === null) throw notFound("erasure_not_found", "No erasure with this id.");
  const counts = await sourceCounts(env.DB, [erasureId]);
  return json(view(row, counts.get(erasureId)));
}
