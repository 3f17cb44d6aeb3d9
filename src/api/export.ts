/**
 * GET /v1/users/:userId/export: everything postcall holds about a user, as NDJSON (one JSON record
 * per line, each with a `type`), the right of access that goes with DELETE /v1/users/:userId.
 *
 * The body is a pull-driven ReadableStream: the next record is read from storage only when the client
 * has taken the previous one, so the Worker holds one page of conversation rows and one group of
 * transcripts at a time (and, for inline audio, one chunk of it), whatever the number of calls.
 *
 * Records, in this order (README, "Export"; what a complete file promises: docs/guarantees.md):
 *   export        the header: format version, user id, time, audio mode
 *   memory        the Durable Object's memory (profile, recent conversations, link), or null fields when none
 *   fact          one per collected fact: its current value and `history` (earlier values, with when each was true)
 *   (memory, fact with `agent_id`, again for each agent the user has a memory with under MEMORY_SCOPE="agent")
 *   phone_link    one per phone number linked to the user
 *   conversation  one per conversation in D1, oldest first, with its transcript and analysis
 *   audio         after its conversation: the API link, or with ?audio=inline the metadata followed by
 *   audio_chunk   records carrying the MP3 in base64 pieces (each decodes on its own; concatenate them)
 *   call_failure  one per failed call from or to the user's numbers
 *   end           counts of every record type; a file without it is incomplete (the stream failed)
 */
import type { Env } from "../lib/env";
import { badRequest, notFound } from "../lib/errors";
import { bytesToBase64 } from "../lib/bytes";
import { iso } from "../lib/time";
import { isE164 } from "../records/identity";
import { scopedObject, userObject } from "../memory/objects";
import type { MemoryView } from "../memory/rpc";
import { readAudioObject } from "../storage/audio";
import {
  callFailurePageForExport,
  conversationPageForExport,
  decodeStoredTranscript,
  storedTranscriptsOf,
  transcriptGroups,
  type ExportConversationRow,
} from "../storage/export";
import { conversationJson } from "./conversations";
import { callFailureView } from "../storage/conversations";
import { memoryJson } from "./users";

export const EXPORT_FORMAT = "postcall.export.v1";

/**
 * Rows per D1 page of conversations (metadata only: the transcripts are read in groups below). Sizes
 * are a balance between memory and subrequests (each D1 call is one; a request may make 1,000 on the
 * paid plan): about 3 per 100 calls, so an export of 30,000 calls stays under it.
 */
export const EXPORT_PAGE_SIZE = 100;
/** A group of transcripts read in one D1 batch: at most this many conversations and this many stored bytes (decoded one at a time). */
const TRANSCRIPTS_PER_GROUP = 50;
const TRANSCRIPT_GROUP_BYTES = 1_000_000;
/** Audio bytes per `audio_chunk` record (a multiple of 3: each chunk's base64 stands alone). 1 MiB of base64. */
export const AUDIO_CHUNK_BYTES = 786_432;
const CALL_FAILURE_PAGE = 100;
/** Numbers per call-failure query (each is bound twice; D1 allows 100 parameters). */
const NUMBERS_PER_QUERY = 40;

type AudioMode = "link" | "inline";

function audioMode(url: URL): AudioMode {
  const v = url.searchParams.get("audio") ?? "link";
  if (v !== "link" && v !== "inline") throw badRequest("invalid_audio_mode", "audio must be link (the default) or inline.");
  return v;
}

/** A filename any browser and shell accepts; the exact id goes in filename* and in the header record. */
function disposition(userId: string): string {
  const safe = userId.replace(/[^A-Za-z0-9._+-]/g, "_").slice(0, 100);
  return `attachment; filename="postcall-export-${safe}.ndjson"; filename*=UTF-8''${encodeURIComponent(`postcall-export-${userId}.ndjson`)}`;
}

export async function exportUser(request: Request, env: Env, userId: string): Promise<Response> {
  const url = new URL(request.url);
  const mode = audioMode(url);
  const memory = await userObject(env, userId).describe();
  // Read the first page before answering, so a user postcall knows nothing about is a 404, not an empty file.
  const firstPage = await conversationPageForExport(env, userId, { limit: EXPORT_PAGE_SIZE, after: null });
  const numbers = [...new Set([...(memory?.phones.map((p) => p.phone_number) ?? []), ...(isE164(userId) ? [userId] : [])])];
  if (memory === null && firstPage.length === 0 && (await callFailurePageForExport(env, numbers.slice(0, NUMBERS_PER_QUERY), { limit: 1, after: null })).length === 0) {
    throw notFound("user_not_found", "postcall holds nothing for this user.");
  }
  const records = exportRecords(env, { userId, mode, memory, firstPage, numbers, origin: url.origin });
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await records.next();
          if (next.done) controller.close();
          else controller.enqueue(encoder.encode(`${JSON.stringify(next.value)}\n`));
        } catch (err) {
          // The status line is long gone: say so in the file (no `end` record follows) and in the log.
          console.error(JSON.stringify({ event: "export_failed", user_id: userId, error: err instanceof Error ? err.message : String(err) }));
          controller.enqueue(encoder.encode(`${JSON.stringify({ type: "error", code: "export_failed", message: "The export stopped before the end; request it again." })}\n`));
          controller.close();
        }
      },
      async cancel() {
        await records.return(undefined);
      },
    },
    // Nothing is read ahead of the client: one record is produced per pull.
    { highWaterMark: 0 },
  );
  return new Response(body, {
    headers: {
      "Content-Type": "application/x-ndjson; charset=utf-8",
      "Content-Disposition": disposition(userId),
      "Cache-Control": "no-store",
      "X-Content-Type-Options": "nosniff",
    },
  });
}

interface ExportInput {
  userId: string;
  mode: AudioMode;
  memory: MemoryView | null;
  firstPage: ExportConversationRow[];
  numbers: string[];
  origin: string;
}

type ExportRecord = Record<string, unknown> & { type: string };

async function* exportRecords(env: Env, input: ExportInput): AsyncGenerator<ExportRecord, void, undefined> {
  const { userId, mode, memory } = input;
  const counts: Record<string, number> = { fact: 0, phone_link: 0, conversation: 0, audio: 0, audio_chunk: 0, call_failure: 0 };
  yield { type: "export", format: EXPORT_FORMAT, user_id: userId, exported_at: new Date().toISOString(), audio: mode };

  if (memory === null) {
    yield { type: "memory", user_id: userId, profile: null, recent_conversations: [], linked_to: null, pending_deliveries: 0, erasing_since: null };
  } else {
    const { facts, phone_numbers, ...rest } = memoryJson(userId, memory);
    yield { type: "memory", ...rest };
    for (const f of facts) {
      counts.fact!++;
      yield { type: "fact", user_id: userId, ...f };
    }
    // MEMORY_SCOPE="agent": the user's memory with each agent is held apart; the right of access covers them all.
    for (const agentId of memory.scopes ?? []) {
      const scoped = await scopedObject(env, userId, agentId).describe();
      if (scoped === null) continue;
      const { facts: scopedFacts, phone_numbers: _none, ...scopedRest } = memoryJson(userId, scoped);
      yield { type: "memory", agent_id: agentId, ...scopedRest };
      for (const f of scopedFacts) {
        counts.fact!++;
        yield { type: "fact", user_id: userId, agent_id: agentId, ...f };
      }
    }
    for (const p of phone_numbers) {
      counts.phone_link!++;
      yield { type: "phone_link", user_id: userId, ...p };
    }
  }

  let page = input.firstPage;
  for (;;) {
    for (const group of transcriptGroups(page, TRANSCRIPT_GROUP_BYTES, TRANSCRIPTS_PER_GROUP)) {
      const stored = await storedTranscriptsOf(env, userId, group.map((r) => r.conversation_id));
      for (const row of group) {
        if (!stored.has(row.conversation_id)) continue; // erased while the export ran
        const transcript = await decodeStoredTranscript(stored.get(row.conversation_id)!);
        stored.delete(row.conversation_id);
        const audio = row.audio_r2_key === null ? null : { bytes: row.audio_bytes!, sha256: row.audio_sha256!, stored_at: row.audio_stored_at! };
        counts.conversation!++;
        yield { type: "conversation", ...conversationJson({ row, transcript, audio }) };
        if (audio !== null) yield* audioRecords(env, row, mode, input.origin, counts);
      }
    }
    if (page.length < EXPORT_PAGE_SIZE) break;
    const last = page[page.length - 1]!;
    page = await conversationPageForExport(env, userId, { limit: EXPORT_PAGE_SIZE, after: { startedAt: last.started_at, conversationId: last.conversation_id } });
  }

  for (let i = 0; i < input.numbers.length; i += NUMBERS_PER_QUERY) {
    const numbers = input.numbers.slice(i, i + NUMBERS_PER_QUERY);
    let after: string | null = null;
    for (;;) {
      const failures = await callFailurePageForExport(env, numbers, { limit: CALL_FAILURE_PAGE, after });
      for (const f of failures) {
        counts.call_failure!++;
        yield {
          type: "call_failure",
          ...callFailureView(f),
          event_timestamp: iso(f.event_timestamp),
          received_at: iso(f.received_at),
        };
      }
      if (failures.length < CALL_FAILURE_PAGE) break;
      after = failures[failures.length - 1]!.conversation_id;
    }
  }
  yield { type: "end", user_id: userId, counts };
}

async function* audioRecords(
  env: Env,
  row: ExportConversationRow,
  mode: AudioMode,
  origin: string,
  counts: Record<string, number>,
): AsyncGenerator<ExportRecord, void, undefined> {
  const base = { type: "audio", conversation_id: row.conversation_id, content_type: "audio/mpeg", bytes: row.audio_bytes, sha256: row.audio_sha256 };
  const url = `${origin}/v1/conversations/${encodeURIComponent(row.conversation_id)}/audio`;
  counts.audio!++;
  if (mode === "link") {
    yield { ...base, url };
    return;
  }
  const object = await readAudioObject(env.AUDIO, row.audio_r2_key!);
  if (object === null) {
    // D1 names an object R2 no longer has (an erasure or retention run in progress): say so, do not fail the export.
    yield { ...base, url, encoding: null, missing: true };
    return;
  }
  const chunks = Math.ceil(object.size / AUDIO_CHUNK_BYTES);
  yield { ...base, url, encoding: "base64", chunks };
  // Re-cut R2's pieces into fixed chunks in one reused buffer: never more than a chunk in memory.
  const buffer = new Uint8Array(AUDIO_CHUNK_BYTES);
  let filled = 0;
  let offset = 0;
  let index = 0;
  const chunk = (): ExportRecord => {
    const record = { type: "audio_chunk", conversation_id: row.conversation_id, index, offset, data: bytesToBase64(buffer.subarray(0, filled)) };
    counts.audio_chunk!++;
    index++;
    offset += filled;
    filled = 0;
    return record;
  };
  const reader = object.body.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
      let at = 0;
      while (at < value.byteLength) {
        const n = Math.min(AUDIO_CHUNK_BYTES - filled, value.byteLength - at);
        buffer.set(value.subarray(at, at + n), filled);
        filled += n;
        at += n;
        if (filled === AUDIO_CHUNK_BYTES) yield chunk();
      }
    }
    if (filled > 0) yield chunk();
  } finally {
    // The client went away mid-audio: stop reading R2.
    if (!finished) await reader.cancel().catch(() => {});
  }
}
