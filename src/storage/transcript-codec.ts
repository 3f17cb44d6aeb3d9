/**
 * The `conversations.transcript` column: a conversation's normalised turns in one value (docs/storage.md).
 * Pure apart from CompressionStream / DecompressionStream (both in workerd and Node).
 *
 * Formats, told apart by the first byte:
 * - 0x01: format 1, written by this Worker: the byte 0x01, then `deflate-raw` of the UTF-8 JSON array
 *   of turns, each `[index, role, message, time_in_call_secs, tools, feedback]` (tools: JSON text or null).
 * - `[` (0x5B): format 0, written by migrations/0004 for conversations stored before it (SQL cannot
 *   compress): the same JSON array, uncompressed. It is read, never written, by this module.
 * Any other first byte is a new format this code does not know: decoding fails loudly rather than
 * guessing.
 *
 * Every encoded transcript is bounded (TRANSCRIPT_LIMITS), so the row holding it stays far below
 * D1's 2 MB: messages are clipped (records/limits), and a transcript whose JSON is still too large
 * loses, in this order, its tool payloads, then message length, then its last turns.
 */
import { clip } from "../records/limits";

export const FORMAT_DEFLATE_JSON = 0x01;
const FORMAT_PLAIN_JSON = 0x5b; // "["

export const TRANSCRIPT_LIMITS = {
  /** UTF-8 bytes of the JSON before compression: what a reader may have to decode and scan. */
  jsonBytes: 1_000_000,
  /** Bytes of the stored value; D1 refuses rows over 2,000,000 bytes. Compression can only shrink below jsonBytes, but check anyway. */
  storedBytes: 1_500_000,
  /** Shortest a message is clipped to before whole turns are dropped. */
  minMessageChars: 64,
} as const;

export type { StoredTurn } from "../records/stored-turn";
import type { StoredTurn } from "../records/stored-turn";

/** What encoding had to give up to keep the transcript within TRANSCRIPT_LIMITS (null: nothing). */
export type Degraded = null | "tools" | "messages" | "turns";

/** Replaces tool payloads when a transcript is too large to keep them (the whole payload is in R2). */
export const TOOLS_DROPPED = JSON.stringify({ truncated: true });

export class TranscriptDecodeError extends Error {
  override name = "TranscriptDecodeError";
}

type Tuple = [number, string, string | null, number, string | null, string | null];

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const out = new Response(new Blob([bytes]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

function tuples(turns: StoredTurn[]): Tuple[] {
  return turns.map((t) => [t.index, t.role, t.message, t.time_in_call_secs, t.tools, t.feedback]);
}

/** The turns clipped to `maxChars` per message (and tools dropped when `dropTools`). */
function shrink(turns: StoredTurn[], maxChars: number, dropTools: boolean): StoredTurn[] {
  return turns.map((t) => ({ ...t, message: clip(t.message, maxChars), tools: dropTools && t.tools !== null ? TOOLS_DROPPED : t.tools }));
}

/**
 * The turns as they will be stored: messages clipped to MAX_TEXT_CHARS, and the whole bounded to
 * TRANSCRIPT_LIMITS.jsonBytes (see `degraded`). Returns the JSON bytes too (encoding needs them).
 *
 * A JSON text is only built when a cheap lower bound on its size (one byte per character) says it
 * may fit, so no input, however large, makes this build a JSON text more than a few times the limit.
 */
export function boundTurns(input: StoredTurn[]): { turns: StoredTurn[]; json: Uint8Array; degraded: Degraded } {
  const limit = TRANSCRIPT_LIMITS.jsonBytes;
  const n = input.length;
  const attempt = (ts: StoredTurn[], lowerBound: number): Uint8Array | null => {
    if (lowerBound > limit) return null;
    const json = utf8.encode(JSON.stringify(tuples(ts)));
    return json.byteLength <= limit ? json : null;
  };
  const chars = (ts: StoredTurn[], cap = Number.POSITIVE_INFINITY) =>
    ts.reduce((sum, t) => sum + Math.min(cap, t.message?.length ?? 0) + (t.tools?.length ?? 0) + t.role.length, 0);

  let turns = input.map((t) => ({ ...t, message: clip(t.message) }));
  let json = attempt(turns, chars(turns));
  if (json) return { turns, json, degraded: null };

  turns = shrink(turns, Number.POSITIVE_INFINITY, true);
  json = attempt(turns, chars(turns));
  if (json) return { turns, json, degraded: "tools" };

  // Shorter messages: from an equal share of the limit (or half the longest), halving down to minMessageChars.
  const longest = turns.reduce((m, t) => Math.max(m, t.message?.length ?? 0), 0);
  const min = TRANSCRIPT_LIMITS.minMessageChars;
  let cap = Math.max(min, Math.min(Math.floor(longest / 2), Math.floor(limit / Math.max(1, n))));
  for (;;) {
    const clipped = shrink(turns, cap, true);
    json = attempt(clipped, chars(turns, cap));
    if (json) return { turns: clipped, json, degraded: "messages" };
    if (cap === min) break;
    cap = Math.max(min, Math.floor(cap / 2));
  }

  // Still too large: so many turns that even short messages do not fit. Keep the first ones, as many
  // as fit (each kept turn costs at least its overhead in the JSON text).
  turns = shrink(turns, min, true);
  let keep = Math.min(n, Math.floor(limit / (min + 16)));
  for (;;) {
    const kept = turns.slice(0, keep);
    if (chars(kept) <= limit) {
      const bytes = utf8.encode(JSON.stringify(tuples(kept)));
      if (bytes.byteLength <= limit || keep === 0) return { turns: kept, json: bytes, degraded: "turns" };
      // Scale by how far over it is (each round at least one turn fewer).
      keep = Math.min(keep - 1, Math.floor((keep * limit) / bytes.byteLength));
    } else {
      keep = Math.floor(keep * 0.8);
    }
  }
}

/** Encodes turns as format 1. Throws if the stored value would exceed TRANSCRIPT_LIMITS.storedBytes (boundTurns prevents it). */
export async function encodeTranscript(json: Uint8Array): Promise<Uint8Array> {
  const deflated = await pipe(json, new CompressionStream("deflate-raw"));
  const out = new Uint8Array(deflated.byteLength + 1);
  out[0] = FORMAT_DEFLATE_JSON;
  out.set(deflated, 1);
  if (out.byteLength > TRANSCRIPT_LIMITS.storedBytes) {
    throw new Error(`transcript encodes to ${out.byteLength} bytes, over ${TRANSCRIPT_LIMITS.storedBytes}`);
  }
  return out;
}

/** Bounds and encodes turns: what storeConversation writes. */
export async function packTranscript(turns: StoredTurn[]): Promise<{ blob: Uint8Array; turns: StoredTurn[]; degraded: Degraded }> {
  const bounded = boundTurns(turns);
  return { blob: await encodeTranscript(bounded.json), turns: bounded.turns, degraded: bounded.degraded };
}

/** D1 returns a BLOB as an array of byte values (or, in some runtimes, an ArrayBuffer); format 0 may be TEXT. */
export type StoredValue = ArrayBuffer | ArrayBufferView | number[] | string;

function bytesOf(value: StoredValue): Uint8Array {
  if (typeof value === "string") return utf8.encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return Uint8Array.from(value);
}

function parseTuples(text: string): StoredTurn[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new TranscriptDecodeError("transcript: not valid JSON");
  }
  if (!Array.isArray(parsed)) throw new TranscriptDecodeError("transcript: not an array of turns");
  return parsed.map((t: unknown, i) => {
    if (
      !Array.isArray(t) ||
      typeof t[0] !== "number" ||
      typeof t[1] !== "string" ||
      !(typeof t[2] === "string" || t[2] === null) ||
      typeof t[3] !== "number" ||
      !(typeof t[4] === "string" || t[4] === null) ||
      !(typeof t[5] === "string" || t[5] === null)
    ) {
      throw new TranscriptDecodeError(`transcript: turn ${i} is malformed`);
    }
    return { index: t[0], role: t[1], message: t[2], time_in_call_secs: t[3], tools: t[4], feedback: t[5] };
  });
}

/** The turns of a stored transcript, in turn order. Throws TranscriptDecodeError on anything it cannot read. */
export async function decodeTranscript(value: StoredValue | null): Promise<StoredTurn[]> {
  if (value === null) return [];
  const bytes = bytesOf(value);
  if (bytes.byteLength === 0) throw new TranscriptDecodeError("transcript: empty value");
  let text: string;
  if (bytes[0] === FORMAT_DEFLATE_JSON) {
    let inflated: Uint8Array;
    try {
      inflated = await pipe(bytes.subarray(1), new DecompressionStream("deflate-raw"));
    } catch (e) {
      throw new TranscriptDecodeError(`transcript: corrupt compressed data (${e instanceof Error ? e.message : String(e)})`);
    }
    try {
      text = fromUtf8.decode(inflated);
    } catch {
      throw new TranscriptDecodeError("transcript: not UTF-8");
    }
    return parseTuples(text);
  }
  if (bytes[0] === FORMAT_PLAIN_JSON) {
    try {
      text = fromUtf8.decode(bytes);
    } catch {
      throw new TranscriptDecodeError("transcript: not UTF-8");
    }
    // Written by SQL (migrations/0004), whose aggregate order is not a promise: sort here.
    return parseTuples(text).sort((a, b) => a.index - b.index);
  }
  throw new TranscriptDecodeError(`transcript: unknown format byte 0x${bytes[0]!.toString(16).padStart(2, "0")}`);
}

/** The full-text document of a transcript: its messages, one per line (the FTS index tokenises it). */
export function ftsDocument(turns: StoredTurn[]): string {
  return turns
    .map((t) => t.message)
    .filter((m): m is string => m !== null && m !== "")
    .join("\n");
}
