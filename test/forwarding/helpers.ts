/**
 * Helpers for the forwarding tests: the real receiver started by test/global/forward-receiver.mjs (a Node
 * HTTP server on 127.0.0.1 that verifies every delivery with `standardwebhooks`), reached over HTTP.
 * The receiver is shared by every forwarding test file: tests find their deliveries by their own ids.
 */
import { env } from "cloudflare:workers";
import { expect } from "vitest";

export const RECEIVER = (env as unknown as { FORWARD_RECEIVER_URL: string }).FORWARD_RECEIVER_URL;

export interface Delivery {
  path: string;
  id: string;
  attempt: number;
  status: number;
  verified: boolean;
  bySecret: boolean[];
  headers: Record<string, string>;
  body: string;
  event: { id: string; type: string; schema_version: number; timestamp: string; data: any } | null;
}

export async function received(path: string): Promise<Delivery[]> {
  const res = await fetch(`${RECEIVER}/_received?path=${encodeURIComponent(path)}`);
  return res.json<Delivery[]>();
}

/**
 * How the receiver answers at `path`: a fixed status; `failStatus` (503) for the first `failFirst` attempts of each
 * webhook-id; or no answer for `hangMs` to the first `hangFirst` attempts (recorded with status 0).
 */
export async function behave(path: string, b: { status?: number; failFirst?: number; failStatus?: number; hangFirst?: number; hangMs?: number }): Promise<void> {
  const res = await fetch(`${RECEIVER}/_behaviour`, { method: "POST", body: JSON.stringify({ path, ...b }) });
  expect(res.status).toBe(200);
}

export async function verifyInNode(headers: Record<string, string>, body: string): Promise<boolean> {
  const res = await fetch(`${RECEIVER}/_verify`, { method: "POST", body: JSON.stringify({ headers, body }) });
  return (await res.json<{ verified: boolean }>()).verified;
}

/** Polls `read` until `done` holds (the outbox alarm and the Queue consumer run on their own). */
export async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, what: string, timeoutMs = 45_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The deliveries at `path` about one conversation (or, for user.erased, one user). */
export const about = (ds: Delivery[], key: string) =>
  ds.filter((d) => d.event?.data?.conversation_id === key || d.event?.data?.user_id === key);

/** Accepted deliveries (2xx) only. */
export const accepted = (ds: Delivery[]) => ds.filter((d) => d.status >= 200 && d.status < 300);

/** Waits until `path` accepted an event of `type` about `key`, and returns every delivery about it there. */
export async function arrived(path: string, key: string, type: string): Promise<Delivery[]> {
  return until(
    async () => about(await received(path), key).filter((d) => d.event?.type === type),
    (ds) => accepted(ds).length > 0,
    `${type} about ${key} at ${path}`,
  );
}
