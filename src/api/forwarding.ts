/**
 * Forwarding's dead letters (docs/forwarding.md): GET /v1/forwarding/failures lists what could not be
 * delivered, newest first; POST /v1/forwarding/failures/:id/retry queues one again. The event is rebuilt
 * from D1 when it is sent, as on its first attempt; once delivered, its dead letter is removed.
 */
import { config } from "../lib/config";
import type { Env } from "../lib/env";
import { ApiError, json, notFound } from "../lib/errors";
import { iso } from "../lib/time";
import { isForwardMessage, type ForwardMessage } from "../records/forward-events";
import { listFailures, markRetried, readFailure, type FailureRow } from "../storage/forwarding";
import { decodeKeyset, encodeKeyset, pageSize } from "./cursor";

function view(r: FailureRow) {
  return {
    id: r.failure_id,
    event_id: r.event_id,
    type: r.event_type,
    destination: r.destination,
    conversation_id: r.conversation_id,
    user_id: r.user_id,
    last_status: r.last_status,
    last_error: r.last_error,
    attempts: r.attempts,
    first_failed_at: iso(r.first_failed_at),
    last_failed_at: iso(r.last_failed_at),
    retried_at: iso(r.retried_at),
  };
}

export async function listForwardFailures(env: Env, url: URL): Promise<Response> {
  const limit = pageSize(url.searchParams.get("limit"), 50);
  const raw = url.searchParams.get("cursor");
  const rows = await listFailures(env.DB, limit + 1, raw === null ? null : decodeKeyset(raw));
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return json({
    failures: page.map(view),
    next_cursor: rows.length > limit && last ? encodeKeyset(last.last_failed_at, last.failure_id) : null,
    // How many destinations FORWARD_DESTINATIONS names: 0 means forwarding is off, so an empty list says nothing failed only when it is not.
    destinations: config(env).forwardDestinations.length,
  });
}

export async function retryForwardFailure(env: Env, failureId: string): Promise<Response> {
  const row = await readFailure(env.DB, failureId);
  if (!row) throw notFound("failure_not_found", "No forwarding failure with this id (it may have been delivered since).");
  const stored: unknown = JSON.parse(row.message);
  if (!isForwardMessage(stored)) throw new ApiError(500, "internal_error", "The dead letter's message cannot be read.");
  if (!env.FORWARD_QUEUE) throw new ApiError(500, "misconfigured", "FORWARD_QUEUE is not bound; forwarding cannot send.");
  const message: ForwardMessage = { ...stored, failureId };
  // Marked before it is queued: a delivery that fails again at once clears the mark (its dead letter is
  // updated), and a delivered one removes the row, whichever way the race goes.
  const now = Math.floor(Date.now() / 1000);
  await markRetried(env.DB, failureId, now);
  await env.FORWARD_QUEUE.send(message, { contentType: "json" });
  return json({ id: failureId, status: "queued", retried_at: iso(now) }, 202);
}
