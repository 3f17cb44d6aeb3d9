/** Helpers for the user data API, phone links and initiation tests (alongside test/helpers.ts). */
import { SELF, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { makeOutboxDue, ownerOf, setOutboxDue, userMemory } from "./objects";
import type { UserMemory } from "../src/objects/user-memory/user-memory";
import { normaliseForMemory, parseEnvelope } from "../src/records/payload";
import { API_KEY, BASE, d1Count, nowSeconds, r2Keys, transcription, type TranscriptionOptions } from "./helpers";
import { conversationPrefix } from "../src/records/keys";
import { homeDb, rowDb } from "./shards";

export function api(method: string, path: string, key: string | null = API_KEY, body?: BodyInit): Promise<Response> {
  const headers = new Headers();
  if (key !== null) headers.set("Authorization", `Bearer ${key}`);
  return SELF.fetch(`${BASE}${path}`, { method, headers, body });
}

export async function apiJson<T = any>(method: string, path: string, expected = 200): Promise<T> {
  const res = await api(method, path);
  const text = await res.text();
  if (res.status !== expected) throw new Error(`${method} ${path}: expected ${expected}, got ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

export const u = (id: string) => encodeURIComponent(id);

/** A random E.164 number in the North American fictional range (555-01xx style, wider for uniqueness). */
export function phoneNumber(): string {
  return `+1415${String(Math.floor(Math.random() * 10_000_000)).padStart(7, "0")}`;
}

export interface InitiationOptions {
  key?: string | null;
  contentType?: string | null;
  headers?: Record<string, string>;
}

export function initiation(body: string | object, o: InitiationOptions = {}): Promise<Response> {
  const headers = new Headers(o.headers);
  const key = o.key === undefined ? API_KEY : o.key;
  if (key !== null) headers.set("Authorization", `Bearer ${key}`);
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const contentType = o.contentType === undefined ? (typeof body === "string" ? null : "application/json") : o.contentType;
  if (contentType !== null) headers.set("Content-Type", contentType);
  return SELF.fetch(`${BASE}/webhooks/elevenlabs/initiation`, { method: "POST", headers, body: text });
}

/**
 * Row counts of every table in a user's object, or (with `conversation`) in a conversation's own
 * object, platform tables excluded. A deliberate look at the private tables, for the tests that exist
 * to check the tables themselves: that an erasure, a wipe or a read leaves no table behind, and what
 * an erasure counts as wiped. Behaviour is read through the object's methods (docs/contract-tests.md, "Test seams").
 */
export async function doTables(id: string, kind: "user" | "conversation" = "user"): Promise<Record<string, number>> {
  const stub = kind === "user" ? userMemory(env, id) : ownerOf(env, null, id);
  return runInDurableObject(stub, (_o, state) => {
    const out: Record<string, number> = {};
    const names = state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'")
      .toArray();
    for (const { name } of names) out[name] = state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${name}"`).one().n;
    return out;
  });
}

export async function alarmOf(userId: string): Promise<number | null> {
  return runInDurableObject(userMemory(env, userId), (_o, state) => state.storage.getAlarm());
}

// Audio lives under keys the audio writer chose (recorded in D1), not under the conversation's prefix.
// Every key ever seen for a conversation is remembered, so a later footprint still checks it is gone.
const audioKeysSeen = new Map<string, Set<string>>();

async function audioKeysOf(conversationId: string): Promise<string[]> {
  const seen = audioKeysSeen.get(conversationId) ?? new Set<string>();
  const { results } = await homeDb(conversationId).prepare("SELECT r2_key FROM audio WHERE conversation_id = ?").bind(conversationId).all<{ r2_key: string }>();
  for (const r of results) seen.add(r.r2_key);
  audioKeysSeen.set(conversationId, seen);
  return [...seen];
}

/** Everything D1 and R2 hold for these conversations. */
export async function footprint(conversationIds: string[], extraKeys: string[] = []) {
  const n = async (table: string) => {
    let total = 0;
    for (const id of conversationIds) total += await d1Count(table, "conversation_id = ?", id);
    return total;
  };
  const keys: string[] = [];
  for (const id of conversationIds) keys.push(...(await r2Keys(conversationPrefix(id))));
  const others = new Set(extraKeys);
  for (const id of conversationIds) for (const k of await audioKeysOf(id)) others.add(k);
  for (const k of others) if (!keys.includes(k) && (await env.AUDIO.head(k)) !== null) keys.push(k);
  // Turns are inside their conversation's row (one transcript value): counted as D1 states them.
  let turns = 0;
  for (const id of conversationIds) {
    turns += (await (await rowDb(id)).prepare("SELECT turn_count AS n FROM conversations WHERE conversation_id = ?").bind(id).first<{ n: number }>())?.n ?? 0;
  }
  return { conversations: await n("conversations"), turns, audio: await n("audio"), r2: keys.length };
}

/** Far enough ahead that no alarm or delivery in a test run treats a parked item as due. */
const PARKED_UNTIL = () => Date.now() + 365 * 86_400_000;

/**
 * Commits a conversation in its owner's object, its outbox item parked as if delivery had failed and
 * were waiting to be retried, and its alarm cancelled. Alarms (which the runtime fires on its own, at
 * times a test cannot know) and deliveries already running skip it until `deliverParked` releases it.
 */
export async function pendingConversation(
  userId: string | null,
  conversationId?: string,
  o: TranscriptionOptions = {},
): Promise<{ id: string; raw: Uint8Array; startedAt: number }> {
  const event = transcription({ userId, conversationId, startedAt: nowSeconds() - 10, ...o });
  const raw = new TextEncoder().encode(JSON.stringify(event));
  const record = normaliseForMemory(parseEnvelope(raw), { userIdVariable: "user_id", defaultCountryCode: "", nowSeconds: nowSeconds() });
  await runInDurableObject(ownerOf(env, record.userId, record.conversationId), async (memory, state) => {
    await (memory as UserMemory).recordConversation({ record, raw, receivedAt: nowSeconds() });
    setOutboxDue(state.storage.sql, PARKED_UNTIL(), record.conversationId);
    // The alarm the record armed would run retention after a later release, when the test cannot see it.
    await state.storage.deleteAlarm();
  });
  return { id: record.conversationId, raw, startedAt: record.startedAt };
}

/** Releases an object's parked items and delivers them now; returns what is left pending (0). */
export async function deliverParked(userId: string | null, conversationId = ""): Promise<number> {
  return runInDurableObject(ownerOf(env, userId, conversationId), async (memory, state) => {
    await state.storage.deleteAlarm();
    makeOutboxDue(state.storage.sql);
    return (await (memory as UserMemory).flush()).pending;
  });
}
