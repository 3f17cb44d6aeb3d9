/**
 * ElevenLabs' own records of our conversations, read through its API with our key: the list of an
 * agent's conversations (cursor pages), one conversation (the same model as the transcription
 * webhook's `data`), and its audio (an MP3 stream); and their deletion (an erasure that reaches the source). Fetch-based: the official SDK's types
 * (`@elevenlabs/elevenlabs-js`: GetConversationsPageResponseModel, GetConversationResponseModel)
 * describe the wire shapes, but the SDK itself is not bundled into the Worker.
 *
 * Rate limits and outages are ElevenLabs' to announce: a 429 waits for `retry-after` (seconds or an
 * HTTP date, capped), a 5xx or a network failure backs off exponentially, a few times, before the
 * error reaches the caller (whose own retry, an alarm or the outbox, takes over from there).
 *
 * The key (`xi-api-key`, the first of ELEVENLABS_API_KEY's comma list) is never logged, never put in
 * an error message, and is scrubbed from any error body quoted back.
 */
import { ApiError } from "../lib/errors";
import { config } from "../lib/config";
import type { Env } from "../lib/env";

/** Attempts per request (the first and the retries). */
export const MAX_ATTEMPTS = 5;
/** Longest wait honoured from a `retry-after` (a longer one fails this attempt; the caller retries later). */
export const MAX_RETRY_AFTER_MS = 60_000;

export class ElevenLabsApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ElevenLabsApiError";
  }
}

/** One row of a list page (the fields postcall reads). */
export interface ConversationListItem {
  conversation_id: string;
  agent_id: string | null;
  start_time_unix_secs: number | null;
  status: string | null;
}

export interface ConversationPage {
  conversations: ConversationListItem[];
  nextCursor: string | null;
  hasMore: boolean;
}

export interface FetchedConversation {
  /** The response body, byte for byte. */
  raw: Uint8Array;
  data: Record<string, unknown>;
}

export interface ApiOptions {
  /** Base of the backoff after a 5xx (ms); doubles per attempt. */
  backoffBaseMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The first key of ELEVENLABS_API_KEY, or null: without it nothing is fetched. */
export function apiKeyOf(env: Env): string | null {
  const first = (env.ELEVENLABS_API_KEY ?? "").split(",").map((s) => s.trim()).find((s) => s.length > 0);
  return first ?? null;
}

/** Milliseconds a `retry-after` asks for (delta-seconds or an HTTP date), or null when absent or unreadable. */
export function retryAfterMs(value: string | null, nowMs = Date.now()): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

export class ElevenLabsApi {
  private readonly backoffBaseMs: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly base: string,
    private readonly key: string,
    opts: ApiOptions = {},
  ) {
    this.backoffBaseMs = opts.backoffBaseMs ?? 500;
    this.sleep = opts.sleep ?? defaultSleep;
  }

  /** The client for this env, or null when ELEVENLABS_API_KEY is not set. */
  static of(env: Env, opts?: ApiOptions): ElevenLabsApi | null {
    const key = apiKeyOf(env);
    return key === null ? null : new ElevenLabsApi(config(env).elevenLabsApiBase, key, opts);
  }

  /** One page of an agent's conversations, oldest first when `since` is given (the API's default is newest first). */
  async listConversations(input: { agentId: string; cursor: string | null; since: number | null; pageSize: number }): Promise<ConversationPage> {
    const q = new URLSearchParams({ agent_id: input.agentId, page_size: String(input.pageSize) });
    if (input.cursor !== null) q.set("cursor", input.cursor);
    if (input.since !== null) q.set("call_start_after_unix", String(input.since));
    const res = await this.request(`/v1/convai/conversations?${q}`);
    const body = (await res.json()) as Record<string, unknown>;
    const rows = Array.isArray(body["conversations"]) ? body["conversations"] : [];
    const conversations: ConversationListItem[] = [];
    for (const row of rows) {
      if (row === null || typeof row !== "object") continue;
      const r = row as Record<string, unknown>;
      if (typeof r["conversation_id"] !== "string") continue;
      conversations.push({
        conversation_id: r["conversation_id"],
        agent_id: typeof r["agent_id"] === "string" ? r["agent_id"] : null,
        start_time_unix_secs: typeof r["start_time_unix_secs"] === "number" ? r["start_time_unix_secs"] : null,
        status: typeof r["status"] === "string" ? r["status"] : null,
      });
    }
    const next = body["next_cursor"];
    return { conversations, nextCursor: typeof next === "string" && next !== "" ? next : null, hasMore: body["has_more"] === true };
  }

  /** One conversation, as GET /v1/convai/conversations/{id} returns it (the webhook's `data`). */
  async getConversation(conversationId: string): Promise<FetchedConversation> {
    const res = await this.request(`/v1/convai/conversations/${encodeURIComponent(conversationId)}`);
    const raw = new Uint8Array(await res.arrayBuffer());
    let data: unknown;
    try {
      data = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(raw));
    } catch {
      throw new ElevenLabsApiError(502, `ElevenLabs answered conversation ${conversationId} with a body that is not JSON.`);
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      throw new ElevenLabsApiError(502, `ElevenLabs answered conversation ${conversationId} with a body that is not a JSON object.`);
    }
    return { raw, data: data as Record<string, unknown> };
  }

  /** The conversation's MP3 as a stream, or null when ElevenLabs has no audio for it (404). */
  async audio(conversationId: string): Promise<ReadableStream<Uint8Array> | null> {
    const res = await this.request(`/v1/convai/conversations/${encodeURIComponent(conversationId)}/audio`, true);
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (!res.body) throw new ElevenLabsApiError(502, `ElevenLabs answered the audio of ${conversationId} with no body.`);
    return res.body;
  }

  /**
   * DELETE /v1/convai/conversations/{id} (the SDK's `conversationalAi.conversations.delete`: a JSON body
   * on success, 422 for a malformed id). "not_found" when ElevenLabs has no such conversation (404):
   * already deleted, or never there, which for an erasure is as good as deleted.
   */
  async deleteConversation(conversationId: string): Promise<"deleted" | "not_found"> {
    const res = await this.request(`/v1/convai/conversations/${encodeURIComponent(conversationId)}`, true, "DELETE");
    await res.body?.cancel();
    return res.status === 404 ? "not_found" : "deleted";
  }

  private async request(path: string, allow404 = false, method: "GET" | "DELETE" = "GET"): Promise<Response> {
    let last: ElevenLabsApiError | null = null;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0 && last !== null && last.status !== 429) await this.sleep(this.backoffBaseMs * 2 ** (attempt - 1));
      let res: Response;
      try {
        res = await fetch(`${this.base}${path}`, { method, headers: { "xi-api-key": this.key, Accept: "application/json, audio/mpeg" } });
      } catch (err) {
        last = new ElevenLabsApiError(502, `ElevenLabs could not be reached: ${this.scrub(err instanceof Error ? err.message : String(err))}`);
        continue;
      }
      if (res.ok || (allow404 && res.status === 404)) return res;
      const detail = this.scrub((await res.text().catch(() => "")).slice(0, 300));
      last = new ElevenLabsApiError(res.status, `ElevenLabs answered ${res.status} for ${path.split("?")[0]}${detail ? `: ${detail}` : ""}`);
      if (res.status === 429) {
        const wait = retryAfterMs(res.headers.get("retry-after")) ?? this.backoffBaseMs * 2 ** attempt;
        if (wait > MAX_RETRY_AFTER_MS) break;
        await this.sleep(wait);
        continue;
      }
      if (res.status < 500) break; // 4xx: this request will not succeed by asking again
    }
    throw last!;
  }

  private scrub(text: string): string {
    return text.split(this.key).join("[redacted]");
  }
}

/** For the HTTP edges: a missing key is the operator's to fix, named like any other setting. */
export function requireApi(env: Env): ElevenLabsApi {
  const api = ElevenLabsApi.of(env);
  if (api === null) throw new ApiError(500, "misconfigured", "Setting ELEVENLABS_API_KEY is not set: nothing can be fetched from ElevenLabs.");
  return api;
}
