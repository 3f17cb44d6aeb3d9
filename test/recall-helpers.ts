/** Helpers for POST /tools/recall tests: conversations with chosen turns, tokens, the tool call. */
import { SELF } from "cloudflare:test";
import { mintUserToken } from "../src/lib/user-token";
import { API_KEY, BASE, nowSeconds, postWebhook, SECRET, transcription, type TranscriptionOptions } from "./helpers";

export const AGENT_KEY = "test-agent-key";

export type TurnSpec = [role: "user" | "agent", message: string];

/** A transcription event whose transcript is exactly `turns`. */
export function conversationWith(turns: TurnSpec[], o: TranscriptionOptions & { agentId?: string } = {}) {
  const event = transcription(o);
  event["data"].transcript = turns.map(([role, message], i) => ({ role, message, time_in_call_secs: i * 5, tool_calls: null, tool_results: null }));
  if (o.agentId !== undefined) event["data"].agent_id = o.agentId;
  return event;
}

/** Posts a conversation and checks it was stored. */
export async function record(event: object): Promise<void> {
  const res = await postWebhook(event);
  if (res.status !== 200) throw new Error(`webhook ${res.status}: ${await res.text()}`);
}

export const tokenFor = (userId: string, issuedAt = nowSeconds()) => mintUserToken([SECRET], userId, issuedAt);

export interface RecallAnswer {
  results: { conversation_id: string | null; date: string; title: string | null; speaker: string; text: string; score: number }[];
  summary: string;
  reason?: string;
}

export function recallRequest(body: unknown, key: string | null = API_KEY): Request {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (key !== null) headers["Authorization"] = `Bearer ${key}`;
  return new Request(`${BASE}/tools/recall`, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
}

export async function recall(body: unknown, key: string | null = API_KEY): Promise<RecallAnswer> {
  const res = await SELF.fetch(recallRequest(body, key));
  if (res.status !== 200) throw new Error(`recall ${res.status}: ${await res.text()}`);
  return res.json<RecallAnswer>();
}

/** Recall for `userId` with a fresh token. */
export async function recallFor(userId: string, query: string, extra: Record<string, unknown> = {}): Promise<RecallAnswer> {
  return recall({ query, user_token: await tokenFor(userId), ...extra });
}
