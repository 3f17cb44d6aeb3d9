/** Shared test helpers: signed requests against the Worker, fixtures with unique ids, storage counts. */
import { SELF } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sign } from "../src/webhooks/signature";
import { readConversation } from "../src/storage/conversations";
import { allShards } from "../src/storage/shards";
import { countEverywhere } from "./shards";
import { ownerOf } from "./objects";
import { verifyUserToken } from "../src/lib/user-token";
import { createHmac, hkdfSync } from "node:crypto";
import transcriptionFixture from "./fixtures/transcription.json";

export const SECRET = "whsec_test_primary";
export const API_KEY = "test-api-key";
export const BASE = "https://postcall.test";

/** The context of a user postcall has never seen, with the test configuration's defaults (vitest.config.ts). */
export const FIRST_TIME_CONTEXT = {
  plan: "free",
  preferred_name: "",
  previous_topics: "",
  last_call_summary: "",
  last_call_at: "",
  call_count: 0,
  days_since_last_call: -1,
  is_returning_user: false,
} as const;

const encoder = new TextEncoder();

let counter = 0;
/** A unique id per call (storage is shared by all tests in a file). */
export function uid(prefix: string): string {
  counter += 1;
  return `${prefix}_${Date.now().toString(36)}_${counter}_${Math.random().toString(36).slice(2, 8)}`;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

export async function signatureHeader(body: string | Uint8Array, opts: { secret?: string; t?: number } = {}): Promise<string> {
  const t = opts.t ?? nowSeconds();
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  return `t=${t},v0=${await sign(opts.secret ?? SECRET, t, bytes)}`;
}

export async function postWebhook(
  body: string | object,
  opts: { secret?: string; t?: number; header?: string | null; path?: string } = {},
): Promise<Response> {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  const header = opts.header === undefined ? await signatureHeader(text, opts) : opts.header;
  if (header !== null) headers["ElevenLabs-Signature"] = header;
  return SELF.fetch(`${BASE}${opts.path ?? "/webhooks/elevenlabs"}`, { method: "POST", headers, body: text });
}

export function apiGet(path: string, key: string | null = API_KEY, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (key !== null) headers.set("Authorization", `Bearer ${key}`);
  return SELF.fetch(`${BASE}${path}`, { ...init, headers });
}

export interface TranscriptionOptions {
  conversationId?: string;
  userId?: string | null;
  /** Where the user id is carried: the default is the `user_id` dynamic variable, as the React SDK does. */
  userIdIn?: "dynamic_variable" | "data" | "client_data";
  title?: string | null;
  summary?: string | null;
  startedAt?: number;
  facts?: Record<string, unknown>;
  externalNumber?: string | null;
  /**
   * The `postcall_user_token` the event carries (README integration: every variable the context
   * returned goes into the session). Default: one issued for the user at the conversation's start;
   * null: none; a string: that one.
   */
  token?: string | null;
}

/**
 * A `postcall_user_token` for `userId` issued at `issuedAt`, made synchronously here the way
 * src/lib/user-token.ts makes it (HKDF of the webhook secret, HMAC-SHA256, 16 bytes), so fixtures
 * stay plain objects. test/trust.test.ts checks that the two agree.
 */
export function tokenFor(userId: string, issuedAt: number, secret = SECRET): string {
  const key = new Uint8Array(hkdfSync("sha256", secret, "postcall", "postcall user token v1", 32));
  const body = `pu1.${b64url(encoder.encode(userId))}.${Math.floor(issuedAt)}`;
  return `${body}.${b64url(new Uint8Array(createHmac("sha256", key).update(body).digest()).subarray(0, 16))}`;
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Gives the event a token for its user id as of its start (after a test changed either). */
export function withToken(event: Mutable): Mutable {
  const data = event["data"];
  const vars = data.conversation_initiation_client_data.dynamic_variables;
  const userId = data.user_id ?? data.conversation_initiation_client_data.user_id ?? vars.user_id ?? null;
  if (userId === null || userId === "") delete vars.postcall_user_token;
  else vars.postcall_user_token = tokenFor(String(userId), data.metadata.start_time_unix_secs ?? nowSeconds());
  return event;
}

type Mutable = { [key: string]: any };

/** The realistic fixture, with a fresh conversation id and the given user and analysis. */
export function transcription(o: TranscriptionOptions = {}): Mutable {
  const event = structuredClone(transcriptionFixture) as Mutable;
  const data = event["data"];
  const conversationId = o.conversationId ?? uid("conv");
  data.conversation_id = conversationId;
  data.conversation_initiation_client_data.dynamic_variables.system__conversation_id = conversationId;
  const userId = o.userId === undefined ? uid("user") : o.userId;
  delete data.conversation_initiation_client_data.dynamic_variables.user_id;
  if (userId !== null) {
    if (o.userIdIn === "data") data.user_id = userId;
    else if (o.userIdIn === "client_data") data.conversation_initiation_client_data.user_id = userId;
    else data.conversation_initiation_client_data.dynamic_variables.user_id = userId;
  }
  if (o.title !== undefined) data.analysis.call_summary_title = o.title;
  if (o.summary !== undefined) data.analysis.transcript_summary = o.summary;
  if (o.startedAt !== undefined) data.metadata.start_time_unix_secs = o.startedAt;
  if (o.facts !== undefined) {
    data.analysis.data_collection_results = Object.fromEntries(
      Object.entries(o.facts).map(([id, value]) => [id, { data_collection_id: id, value, rationale: "test" }]),
    );
  }
  if (o.externalNumber !== undefined) {
    data.metadata.phone_call =
      o.externalNumber === null
        ? null
        : { type: "twilio", direction: "inbound", phone_number_id: "pn_1", agent_number: "+14155550000", external_number: o.externalNumber, call_sid: "CA1" };
  }
  if (o.token === undefined) withToken(event);
  else if (o.token === null) delete data.conversation_initiation_client_data.dynamic_variables.postcall_user_token;
  else data.conversation_initiation_client_data.dynamic_variables.postcall_user_token = o.token;
  return event;
}

export function userIdOf(event: Mutable): string | null {
  return event["data"].conversation_initiation_client_data.dynamic_variables.user_id ?? event["data"].user_id ?? null;
}

/** Runs the owner's outbox now (the alarm would do the same a moment later). */
export async function flush(userId: string | null, conversationId: string) {
  return ownerOf(env, userId, conversationId).flush();
}

/**
 * A user's context variables, after checking that `postcall_user_token` is there and vouches for
 * this user; the token is then left out, so tests compare the memory served.
 */
export async function context(userId: string): Promise<Record<string, unknown>> {
  const res = await apiGet(`/v1/users/${encodeURIComponent(userId)}/context`);
  if (res.status !== 200) throw new Error(`context ${res.status}: ${await res.text()}`);
  const body = await res.json<{ dynamic_variables: Record<string, unknown> }>();
  const { postcall_user_token: token, ...rest } = body.dynamic_variables;
  await expectTokenFor(token, userId);
  return rest;
}

/** Fails unless `token` is a `postcall_user_token` this deployment signed for `userId`. */
export async function expectTokenFor(token: unknown, userId: string): Promise<void> {
  const check = await verifyUserToken([SECRET, "whsec_test_secondary"], token);
  if (!check.ok || check.claims.userId !== userId) {
    throw new Error(`postcall_user_token ${JSON.stringify(token)} does not vouch for ${JSON.stringify(userId)}: ${JSON.stringify(check)}`);
  }
}

/** Rows of `table` matching `where`, in every D1 shard. */
export async function d1Count(table: string, where = "1 = 1", ...params: unknown[]): Promise<number> {
  return countEverywhere(`SELECT count(*) AS n FROM ${table} WHERE ${where}`, ...params);
}

/**
 * Turns D1 keeps of the conversations matching `where` (a condition on `conversations`), read back
 * through the storage layer: a conversation is one row, its transcript one encoded value.
 */
export async function storedTurns(where = "1 = 1", ...params: unknown[]): Promise<number> {
  let n = 0;
  for (const db of allShards(env)) {
    const { results } = await db.prepare(`SELECT conversation_id FROM conversations WHERE ${where}`).bind(...params).all<{ conversation_id: string }>();
    for (const r of results) n += (await readConversation(env, r.conversation_id))?.transcript.length ?? 0;
  }
  return n;
}

export async function r2Keys(prefix = ""): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.AUDIO.list({ prefix, cursor });
    keys.push(...page.objects.map((o) => o.key));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return keys;
}
