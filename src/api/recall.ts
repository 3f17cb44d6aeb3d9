/**
 * POST /tools/recall: an ElevenLabs server tool that looks up what this user said in past calls,
 * mid-call (README "Recall"; docs/storage.md for the index). The key is checked by the router
 * (src/index.ts, AGENT_API_KEY or API_KEY); everything after it answers 200, because a tool error
 * must never break the call: a bad body or token is a 200 with no results and a `reason`.
 *
 * Whose memory: only the one `user_token` names (the session's `postcall_user_token`, passed as a
 * dynamic-variable parameter, so the LLM never chooses it), in the scope MEMORY_SCOPE and `agent_id`
 * select (src/memory/objects.ts `memoryObject`). One Durable Object round trip, no D1.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { json } from "../lib/errors";
import { readAtMost } from "../lib/http/body";
import { iso } from "../lib/time";
import { TOKEN_CLOCK_SKEW_SECONDS, verifyUserToken, type TokenCheck, type UserTokenClaims } from "../lib/user-token";
import { memoryName, memoryObject } from "../memory/objects";
import { RECALL_MAX_LIMIT } from "../records/limits";
import type { RecallHit } from "../memory/rpc";

export const RECALL_MAX_BODY_BYTES = 16 * 1024;
export const RECALL_MAX_QUERY_CHARS = 500;
export const RECALL_DEFAULT_LIMIT = 5;

export type RecallReason = "token_missing" | "token_invalid" | "token_expired" | "bad_request";

const SUMMARIES: Record<RecallReason, string> = {
  token_missing: "I can't look up earlier conversations in this call.",
  token_invalid: "I can't look up earlier conversations in this call.",
  token_expired: "I can't look up earlier conversations in this call any more.",
  bad_request: "I couldn't search earlier conversations for that.",
};

const NOTHING = "No earlier conversation mentions that.";

function refuse(reason: RecallReason): Response {
  return json({ results: [], summary: SUMMARIES[reason], reason });
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** The body as JSON, or null when it is too large, not UTF-8 JSON, or not an object. */
async function readJson(request: Request): Promise<Record<string, unknown> | null> {
  const bytes = await readAtMost(request, RECALL_MAX_BODY_BYTES);
  if (bytes === null) return null;
  try {
    const parsed: unknown = JSON.parse(utf8.decode(bytes));
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** `limit` as an LLM may send it (a number or a numeric string), clamped to 1..RECALL_MAX_LIMIT. */
function limitOf(v: unknown): number | null {
  if (v === undefined || v === null || v === "") return RECALL_DEFAULT_LIMIT;
  const n = typeof v === "number" ? v : typeof v === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n)) return null;
  return Math.max(1, Math.min(RECALL_MAX_LIMIT, Math.floor(n)));
}

/** An optional id: a non-empty string, or null when absent or empty (a dynamic variable left unset). */
function optionalId(v: unknown): string | null | undefined {
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") return undefined;
  const t = v.trim();
  return t === "" || t.length > 256 ? (t === "" ? null : undefined) : t;
}

/**
 * Verified tokens, per isolate: a call's tool is asked many times with the same token, and each
 * verification is an HMAC per configured secret. Keyed by the secrets too, so a rotation (a new env)
 * never reuses an old answer; only successes are kept, so junk cannot fill it; bounded.
 */
const verified = new Map<string, UserTokenClaims>();
const VERIFIED_MAX = 10_000;

async function claimsOf(secrets: readonly string[], token: unknown): Promise<TokenCheck> {
  const key = typeof token === "string" ? `${secrets.join(",")}\u0000${token}` : null;
  const hit = key === null ? undefined : verified.get(key);
  if (hit !== undefined) return { ok: true, claims: hit };
  const check = await verifyUserToken(secrets, token);
  if (check.ok && key !== null) {
    if (verified.size >= VERIFIED_MAX) verified.clear();
    verified.set(key, check.claims);
  }
  return check;
}

function summaryOf(hits: RecallHit[]): string {
  if (hits.length === 0) return NOTHING;
  const best = hits[0]!;
  const when = new Date(best.at * 1000).toISOString().slice(0, 10);
  const what = best.title !== null ? ` ("${best.title}")` : "";
  return `Found ${hits.length} earlier mention${hits.length === 1 ? "" : "s"}; the best is from ${when}${what}.`;
}

export async function recallTool(request: Request, env: Env): Promise<Response> {
  const cfg = config(env);
  const body = await readJson(request);
  if (body === null) return refuse("bad_request");
  const check = await claimsOf(cfg.webhookSecrets, body["user_token"]);
  if (!check.ok) return refuse(check.reason === "missing" ? "token_missing" : "token_invalid");
  const now = Math.floor(Date.now() / 1000);
  if (check.claims.issuedAt > now + TOKEN_CLOCK_SKEW_SECONDS) return refuse("token_invalid");
  if (now > check.claims.issuedAt + cfg.userTokenLifetimeSeconds) return refuse("token_expired");

  const query = typeof body["query"] === "string" ? body["query"].trim() : "";
  const limit = limitOf(body["limit"]);
  const conversationId = optionalId(body["conversation_id"]);
  const agentId = optionalId(body["agent_id"]);
  if (query.length === 0 || query.length > RECALL_MAX_QUERY_CHARS || limit === null || conversationId === undefined || agentId === undefined) {
    return refuse("bad_request");
  }
  // In agent scope a recall must say which agent's memory it reads: without it, none is read.
  if (cfg.memoryScope === "agent" && agentId === null) return refuse("bad_request");

  const hits = await memoryObject(env, memoryName(env, check.claims.userId, agentId)).recall({ query, limit, excludeConversationId: conversationId, now });
  return json({
    results: hits.map((h) => ({
      conversation_id: h.conversation_id,
      date: iso(h.at),
      title: h.title,
      speaker: h.speaker,
      text: h.text,
      score: h.score,
    })),
    summary: summaryOf(hits),
  });
}
