/**
 * Webhook outcomes counted in this isolate's memory and flushed to the stats object
 * (src/objects/health-stats/stats.ts) at most every FLUSH_INTERVAL_MS or every FLUSH_EVENTS events, in the
 * background (ctx.waitUntil), one flush at a time. Counting never writes storage per request: a
 * flood of unsigned requests costs one small write per flush, not one per request.
 *
 * Why this and not Workers Analytics Engine: it needs no extra binding or account setup, works the
 * same under `wrangler dev` and in tests, and the page reads it with one Durable Object call. The
 * price, documented in docs/health.md: counts are approximate. An isolate that is evicted before
 * its next flush loses what it counted since the last one (at most FLUSH_INTERVAL_MS of its
 * traffic), and a flush that fails is kept for the next one only up to MAX_PENDING_KEYS.
 *
 * Metrics (the `metric` column): `accepted`, `duplicate`, `ignored`, `dropped` by event type; `refused` by
 * error code (post-call webhook 4xx); `initiation_refused` by code; `failed` by code (5xx: not kept,
 * the sender should retry); the initiation webhook's answers count as `accepted` type `initiation`.
 */
import type { Env } from "../lib/env";
import { ApiError } from "../lib/errors";
import { statsObject } from "./objects";
import type { CountBatch } from "./rpc";
import { hourOf } from "../lib/time";

export const FLUSH_INTERVAL_MS = 10_000;
export const FLUSH_EVENTS = 1_000;
/** Distinct (hour, metric, key) entries one isolate holds before new keys count as `other`. */
export const MAX_PENDING_KEYS = 500;

export type Metric = "accepted" | "duplicate" | "ignored" | "dropped" | "refused" | "initiation_refused" | "failed";

let counts = new Map<string, [number, string, string, number]>();
let last = new Map<string, { type: string; at: number; conversationId: string | null }>();
let events = 0;
let lastFlushAt = Date.now();
let inFlight: Promise<void> | null = null;

function add(hour: number, metric: string, rawKey: string, n: number): void {
  let key = rawKey.slice(0, 64);
  let id = `${hour}|${metric}|${key}`;
  if (!counts.has(id) && counts.size >= MAX_PENDING_KEYS) {
    key = "other";
    id = `${hour}|${metric}|${key}`;
  }
  const entry = counts.get(id);
  if (entry) entry[3] += n;
  else counts.set(id, [hour, metric, key, n]);
}

/** Counts one webhook outcome. `at` is Unix seconds. */
export function count(metric: Metric, key: string, at: number, conversationId: string | null = null): void {
  add(hourOf(at), metric, key, 1);
  events++;
  if (metric === "accepted") {
    const prev = last.get(key);
    if (!prev || prev.at <= at) last.set(key, { type: key, at, conversationId });
  }
}

function take(): CountBatch | null {
  if (events === 0) return null;
  const batch: CountBatch = { counts: [...counts.values()], last: [...last.values()] };
  counts = new Map();
  last = new Map();
  events = 0;
  return batch;
}

function send(env: Env, batch: CountBatch): Promise<void> {
  lastFlushAt = Date.now();
  // Started inside a promise, so that even a synchronous failure (making the stub) cannot escape into
  // the webhook's answer: counting must never change what a webhook is answered.
  inFlight = Promise.resolve()
    .then(() => statsObject(env).recordCounts(batch))
    .catch((err) => {
      // Kept for the next flush (bounded by MAX_PENDING_KEYS), so a stats object that is briefly
      // unreachable loses nothing.
      for (const [hour, metric, key, n] of batch.counts) add(hour, metric, key, n);
      for (const e of batch.last) if (!last.has(e.type)) last.set(e.type, e);
      for (const c of batch.counts) events += c[3];
      console.warn(`health counters not flushed: ${err instanceof Error ? err.message : String(err)}`);
    })
    .finally(() => {
      inFlight = null;
    });
  return inFlight;
}

/** After each counted request: flushes in the background when enough time or events have passed. */
export function maybeFlush(env: Env, ctx: ExecutionContext | undefined): void {
  if (ctx === undefined || inFlight !== null || events === 0) return;
  if (events < FLUSH_EVENTS && Date.now() - lastFlushAt < FLUSH_INTERVAL_MS) return;
  const batch = take();
  if (batch) ctx.waitUntil(send(env, batch));
}

/** Flushes what this isolate holds now (the health page calls it before reading, so its own isolate's counts are current). */
export async function flushNow(env: Env): Promise<void> {
  if (inFlight) await inFlight;
  const batch = take();
  if (batch) await send(env, batch);
}


/**
 * A webhook's 200: `stored` counts as accepted, `duplicate`, `ignored` and `dropped` (an event of an
 * erased conversation, src/objects/shared/tombstone.ts) under their own names.
 */
export function countAnswer(status: "stored" | "duplicate" | "ignored" | "dropped", type: string, at: number, conversationId: string | null = null): void {
  count(status === "stored" ? "accepted" : status, type, at, conversationId);
}

/**
 * Runs a webhook handler and counts how it was refused: a 4xx under `refused` (or
 * `initiation_refused`) by its code, anything else under `failed` (a 5xx: not kept). Then flushes
 * if it is time. Accepted events are counted where the handler knows their type (countAnswer).
 */
export async function counted(
  env: Env,
  ctx: ExecutionContext | undefined,
  webhook: "post_call" | "initiation",
  run: () => Promise<Response>,
): Promise<Response> {
  const at = Math.floor(Date.now() / 1000);
  try {
    return await run();
  } catch (err) {
    if (err instanceof ApiError && err.status < 500) count(webhook === "post_call" ? "refused" : "initiation_refused", err.code, at);
    else count("failed", `${webhook}:${err instanceof ApiError ? err.code : "internal_error"}`, at);
    throw err;
  } finally {
    maybeFlush(env, ctx);
  }
}
