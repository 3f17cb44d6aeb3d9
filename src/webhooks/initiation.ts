/**
 * POST /webhooks/elevenlabs/initiation: ElevenLabs asks for a phone caller's dynamic variables while
 * the phone rings (docs/elevenlabs.md#initiation). No HMAC exists for this request: it carries whatever
 * headers the operator configured, here `Authorization: Bearer <API_KEY>`.
 *
 * The answer must be fast and must never fail the call for want of memory: every defined variable
 * is always present (a missing one fails the call), an unknown, withheld or malformed number gets
 * the first-time defaults, and only authentication (401), the source allowlist (403) and an
 * oversized body (413) are refused. Storage: none for a withheld number, one Durable Object call for
 * an unlinked number, two for a number linked to an app user.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { json } from "../lib/errors";
import { normalisePhone } from "../records/identity";
import { initiationAnswer } from "../memory/context";
import { count, counted } from "../memory/health-counts";
import { requireAllowedSource, requireApiKey } from "../lib/http/auth";
import { readBody } from "./body";

/** ElevenLabs sends four short strings; anything near this size is not an initiation request. */
export const INITIATION_MAX_BODY_BYTES = 16 * 1024;

export interface InitiationRequest {
  callerId: string | null;
  agentId: string | null;
  calledNumber: string | null;
  callSid: string | null;
  conversationId: string | null;
}

const FIELDS: [keyof InitiationRequest, string][] = [
  ["callerId", "caller_id"],
  ["agentId", "agent_id"],
  ["calledNumber", "called_number"],
  ["callSid", "call_sid"],
  ["conversationId", "conversation_id"],
];

function scalar(v: unknown): string | null {
  if (typeof v === "string") return v;
  // A number may arrive unquoted in JSON (14155550100); keep its digits.
  if (typeof v === "number" && Number.isSafeInteger(v)) return String(v);
  return null;
}

// Stateless for whole-buffer decoding, so one instance serves every request.
const lenientUtf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: false });

/**
 * Reads the request's fields from JSON or `application/x-www-form-urlencoded` (the encoding is not
 * documented). The Content-Type is a hint only: a body that looks like a JSON object is read as JSON
 * whatever the header says, anything else as a form. Unknown fields are ignored; an unreadable body
 * yields no fields (the caller then gets the defaults). Pure.
 */
export function parseInitiation(body: Uint8Array, contentType: string | null): InitiationRequest {
  const out: InitiationRequest = { callerId: null, agentId: null, calledNumber: null, callSid: null, conversationId: null };
  const text = lenientUtf8.decode(body).trim();
  if (text === "") return out;
  const saysJson = /\bjson\b/i.test(contentType ?? "");
  const saysForm = /x-www-form-urlencoded/i.test(contentType ?? "");
  if (text.startsWith("{") || (saysJson && !saysForm)) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
        const o = parsed as Record<string, unknown>;
        for (const [key, name] of FIELDS) out[key] = scalar(o[name]);
      }
      return out;
    } catch {
      // Not JSON after all, whatever the header said: try it as a form.
    }
  }
  const form = new URLSearchParams(text);
  for (const [key, name] of FIELDS) out[key] = form.get(name);
  return out;
}

/** Form encoding turns an unescaped "+" into a space: " 14155550100" is read back as "+14155550100". */
function callerNumber(raw: string | null, defaultCountryCode: string): string | null {
  if (raw === null) return null;
  const repaired = /^ \d/.test(raw) ? `+${raw.slice(1)}` : raw;
  return normalisePhone(repaired, defaultCountryCode);
}

/** Counted for the health page like the post-call webhook (src/memory/health-counts.ts). */
export function handleInitiation(request: Request, env: Env, ctx?: ExecutionContext): Promise<Response> {
  return counted(env, ctx, "initiation", async () => {
    const res = await answerInitiation(request, env);
    count("accepted", "initiation", Math.floor(Date.now() / 1000));
    return res;
  });
}

async function answerInitiation(request: Request, env: Env): Promise<Response> {
  requireAllowedSource(request, env);
  await requireApiKey(request, env, "agent");
  const cfg = config(env);
  const body = await readBody(request, INITIATION_MAX_BODY_BYTES);
  const call = parseInitiation(body, request.headers.get("Content-Type"));
  const phone = callerNumber(call.callerId, cfg.defaultCountryCode);

  const { body: answer, degraded } = await initiationAnswer(env, phone, Date.now(), call.agentId);
  return json(answer, 200, degraded ? { "X-Postcall-Degraded": "memory_unavailable" } : {});
}
