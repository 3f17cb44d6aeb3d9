/**
 * One attempt to deliver one forwarded event to one destination: build the body (src/forwarding/events.ts),
 * sign it the Standard Webhooks way, POST it, and say what the answer means.
 *
 *   2xx                          delivered
 *   408, 429, 5xx, timeout,      retry, after the destination's Retry-After if it gave one, else
 *   network error                FORWARD_RETRY_BASE_SECONDS x 2^(attempt - 1), at most an hour, ±20% jitter
 *   any other status (4xx, 3xx)  dead: the destination refused this request, sending it again cannot help
 *                                (redirects are not followed: a signed event goes only where it was configured)
 */
import type { Config } from "../lib/config";
import type { Env } from "../lib/env";
import { signedHeaders } from "../lib/standard-webhooks";
import type { ForwardMessage } from "../records/forward-events";
import { buildEvent } from "./events";

/** Retries after the first delivery. Keep equal to `max_retries` of the postcall-forward consumer in wrangler.toml. */
export const FORWARD_MAX_RETRIES = 12;
export const MAX_RETRY_DELAY_SECONDS = 3600;
/** How much of a refusing destination's answer is kept as the error. */
const ERROR_BODY_CHARS = 300;

export type Outcome =
  | { kind: "delivered"; status: number }
  /** What the event reports is no longer stored (erased after it was queued): nothing to send. */
  | { kind: "gone" }
  | { kind: "retry"; status: number | null; error: string; delaySeconds: number; userId: string | null }
  | { kind: "dead"; status: number | null; error: string; userId: string | null };

export function retryDelaySeconds(baseSeconds: number, attempt: number, retryAfter: number | null = null): number {
  if (retryAfter !== null) return Math.min(MAX_RETRY_DELAY_SECONDS, retryAfter);
  const base = Math.min(MAX_RETRY_DELAY_SECONDS, baseSeconds * 2 ** Math.min(Math.max(attempt - 1, 0), 20));
  return Math.min(MAX_RETRY_DELAY_SECONDS, Math.round(base * (0.8 + Math.random() * 0.4)));
}

/** Retry-After as seconds (a number, or an HTTP date), or null when absent or unreadable. */
export function parseRetryAfter(value: string | null, nowMs: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - nowMs) / 1000));
}

async function excerpt(res: Response): Promise<string> {
  try {
    const text = await res.text();
    return text.length > ERROR_BODY_CHARS ? `${text.slice(0, ERROR_BODY_CHARS)}…` : text;
  } catch {
    return "";
  }
}

/** `attempt`: 1 for the first delivery of the message. */
export async function attemptDelivery(env: Env, cfg: Config, m: ForwardMessage, attempt: number): Promise<Outcome> {
  const d = cfg.forwardDestinations.find((x) => x.key === m.destination);
  if (!d) return { kind: "dead", status: null, error: `destination ${JSON.stringify(m.destination)} is no longer in FORWARD_DESTINATIONS`, userId: null };
  const built = await buildEvent(env, m, d);
  if (built === null) return { kind: "gone" };
  const now = Date.now();
  const headers = signedHeaders(cfg.forwardSigningSecrets, m.id, Math.floor(now / 1000), built.body);
  let res: Response;
  try {
    res = await fetch(d.url, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json", "User-Agent": "postcall-forwarding/1" },
      body: built.body,
      redirect: "manual",
      signal: AbortSignal.timeout(cfg.forwardTimeoutSeconds * 1000),
    });
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
    const error = timedOut ? `no answer within ${cfg.forwardTimeoutSeconds} s` : `request failed: ${err instanceof Error ? err.message : String(err)}`;
    return { kind: "retry", status: null, error, delaySeconds: retryDelaySeconds(cfg.forwardRetryBaseSeconds, attempt), userId: built.userId };
  }
  if (res.status >= 200 && res.status < 300) {
    await res.body?.cancel();
    return { kind: "delivered", status: res.status };
  }
  const error = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}: ${await excerpt(res)}`.trim();
  if (res.status === 408 || res.status === 429 || res.status >= 500) {
    const delaySeconds = retryDelaySeconds(cfg.forwardRetryBaseSeconds, attempt, parseRetryAfter(res.headers.get("Retry-After"), now));
    return { kind: "retry", status: res.status, error, delaySeconds, userId: built.userId };
  }
  return { kind: "dead", status: res.status, error, userId: built.userId };
}
