/** Helpers for audio tests: MP3-sized byte sources, audio events in any key order, chunked uploads. */
import { SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { bytesToHex } from "../src/lib/bytes";
import { BASE, nowSeconds, r2Keys, signatureHeader, uid } from "./helpers";
import type { AudioRow } from "../src/storage/audio";
import { homeDb } from "./shards";

const enc = new TextEncoder();

export { audioBytes } from "./fake-api/data";

export function base64Of(bytes: Uint8Array): string {
  const parts: string[] = [];
  const step = 3 * 8192;
  for (let off = 0; off < bytes.length; off += step) {
    parts.push(btoa(String.fromCharCode.apply(null, Array.from(bytes.subarray(off, off + step)))));
  }
  return parts.join("");
}

export async function sha256Hex(data: ArrayBuffer | Uint8Array): Promise<string> {
  return bytesToHex(new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
}

export interface AudioEventOptions {
  conversationId?: string;
  agentId?: string;
  /** Order of the top-level keys. */
  order?: ("type" | "event_timestamp" | "data")[];
  /** Order of the keys inside `data`. */
  dataOrder?: ("agent_id" | "conversation_id" | "full_audio")[];
  /** Escape every `/` of the base64 as `\/`, as some JSON encoders do. */
  escapeSlashes?: boolean;
  /** Whitespace around every token. */
  pretty?: boolean;
  /** Replaces the base64 text (after escaping), e.g. to damage it. */
  mapBase64?: (b64: string) => string;
}

/** A post_call_audio body written by hand, so key order and escaping are exactly as asked. */
export function audioEvent(audio: Uint8Array, o: AudioEventOptions = {}): { body: Uint8Array; conversationId: string } {
  const conversationId = o.conversationId ?? uid("conv_audio");
  let b64 = base64Of(audio);
  if (o.escapeSlashes) b64 = b64.replace(/\//g, "\\/");
  if (o.mapBase64) b64 = o.mapBase64(b64);
  const sp = o.pretty ? "\n  " : "";
  const dataFields: Record<string, string> = {
    agent_id: JSON.stringify(o.agentId ?? "agent_01jx3kq2p9fz8b7c6d5e4a3b2c"),
    conversation_id: JSON.stringify(conversationId),
    full_audio: `"${b64}"`,
  };
  const data = `{${(o.dataOrder ?? ["agent_id", "conversation_id", "full_audio"]).map((k) => `${sp}"${k}"${sp}:${sp}${dataFields[k]}`).join(`${sp},`)}${sp}}`;
  const top: Record<string, string> = { type: '"post_call_audio"', event_timestamp: String(nowSeconds()), data };
  const json = `${sp}{${(o.order ?? ["type", "event_timestamp", "data"]).map((k) => `${sp}"${k}"${sp}:${sp}${top[k]}`).join(`${sp},`)}${sp}}${sp}`;
  return { body: enc.encode(json), conversationId };
}

/** Piece sizes cycled through when streaming a body: tiny, network-sized, and large. */
const PIECES = [1, 1800, 7, 65_536, 100_003, 3, 4096];

/** A stream of `body` in irregular pieces, optionally failing after `failAfter` bytes. */
export function chunkedStream(body: Uint8Array, failAfter?: number): ReadableStream<Uint8Array> {
  let off = 0;
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (failAfter !== undefined && off >= failAfter) {
        controller.error(new Error("client went away"));
        return;
      }
      if (off >= body.length) {
        controller.close();
        return;
      }
      const n = PIECES[i++ % PIECES.length]!;
      controller.enqueue(body.slice(off, off + n));
      off += n;
    },
  });
}

/** POSTs a signed body as a chunked stream (no Content-Length), as ElevenLabs sends audio. */
export async function postChunked(
  body: Uint8Array,
  opts: { signed?: Uint8Array; secret?: string; header?: string } = {},
): Promise<Response> {
  const header = opts.header ?? (await signatureHeader(opts.signed ?? body, { secret: opts.secret }));
  return SELF.fetch(`${BASE}/webhooks/elevenlabs`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "ElevenLabs-Signature": header },
    body: chunkedStream(body),
  });
}

export const audioObjectKeys = () => r2Keys("audio/");

export async function d1AudioRow(conversationId: string) {
  return homeDb(conversationId).prepare("SELECT * FROM audio WHERE conversation_id = ?").bind(conversationId).first<AudioRow>();
}
