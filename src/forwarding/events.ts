/**
 * The bodies of forwarded events, schema version 1 (docs/forwarding.md, which is the contract: change
 * a field there and here together, and a breaking change gets a new `schema_version`). Built at delivery
 * from what D1 holds, so the Queue message stays a small reference (src/records/forward-events.ts).
 *
 * Links are paths on this postcall (`/v1/conversations/<id>`), read with an API_KEY: the consumer does
 * not know the URL it is deployed under, and the receiver does.
 */
import type { ForwardDestination } from "../lib/forwarding-config";
import { iso } from "../lib/time";
import { FORWARD_SCHEMA_VERSION, type ForwardMessage } from "../records/forward-events";
import { callFailureView, parseStoredJson as parseJson, readConversation, turnsView } from "../storage/conversations";
import { readAudioEvent, readCallFailure } from "../storage/forwarding";
import { firstOf, homeShards, type ShardEnv } from "../storage/shards";

export interface BuiltEvent {
  body: string;
  /** Whose data it carries (a dead letter is erased with its user). */
  userId: string | null;
}

const conversationPath = (id: string) => `/v1/conversations/${encodeURIComponent(id)}`;
const isScalar = (v: unknown) => typeof v === "string" || typeof v === "number" || typeof v === "boolean";

function envelope(m: ForwardMessage, data: unknown): string {
  return JSON.stringify({ id: m.id, type: m.event.type, schema_version: FORWARD_SCHEMA_VERSION, timestamp: iso(m.event.occurredAt), data });
}

/**
 * The event's body, or null when what it reports is no longer stored (erased, or removed by retention,
 * after the event was queued): nothing is sent then, since the user asked for it to be gone.
 */
export async function buildEvent(env: ShardEnv, m: ForwardMessage, d: ForwardDestination): Promise<BuiltEvent | null> {
  const id = m.event.conversationId;
  switch (m.event.type) {
    case "user.erased": {
      const erased = m.event.erased;
      if (!erased) throw new Error("a user.erased message without its user");
      return { body: envelope(m, { user_id: erased.userId, erasure_started_at: iso(erased.erasingSince) }), userId: erased.userId };
    }
    case "conversation.stored": {
      const stored = id === null ? null : await readConversation(env, id, { transcript: d.includeTranscript });
      if (!stored) return null;
      const r = stored.row;
      const analysis = parseJson(r.analysis) as { evaluation?: unknown; data_collection?: Record<string, unknown> } | null;
      const collected = analysis?.data_collection ?? null;
      const data: Record<string, unknown> = {
        conversation_id: r.conversation_id,
        agent_id: r.agent_id,
        agent_name: r.agent_name,
        user: r.user_id === null ? null : { id: r.user_id, identified_by: r.user_id_source },
        status: r.status,
        started_at: iso(r.started_at),
        duration_secs: r.duration_secs,
        title: r.title,
        summary: r.summary,
        outcome: r.call_successful,
        termination_reason: r.termination_reason,
        main_language: r.main_language,
        phone: r.phone_number === null ? null : { number: r.phone_number, direction: r.phone_direction, provider: r.phone_provider },
        // Facts: the scalar values of the data collection, as the user's dynamic variables hold them.
        facts: collected === null ? null : Object.fromEntries(Object.entries(collected).filter(([, v]) => isScalar(v))),
        data_collection: collected,
        evaluation: analysis?.evaluation ?? null,
        turn_count: r.turn_count,
        links: { conversation: conversationPath(r.conversation_id), audio: `${conversationPath(r.conversation_id)}/audio` },
      };
      if (d.includeTranscript) {
        data["transcript"] = turnsView(stored.transcript);
      }
      return { body: envelope(m, data), userId: r.user_id };
    }
    case "audio.stored": {
      const a = id === null ? null : await firstOf(await homeShards(env, id), (db) => readAudioEvent(db, id));
      if (!a) return null;
      return {
        body: envelope(m, {
          conversation_id: a.conversation_id,
          agent_id: a.agent_id,
          // Known when the transcript was stored first; audio may come before it (then null).
          user: a.user_id === null ? null : { id: a.user_id, identified_by: a.user_id_source },
          bytes: a.bytes,
          sha256: a.sha256,
          content_type: "audio/mpeg",
          links: { audio: `${conversationPath(a.conversation_id)}/audio`, conversation: conversationPath(a.conversation_id) },
        }),
        userId: a.user_id,
      };
    }
    case "call.failed": {
      const f = id === null ? null : await firstOf(await homeShards(env, id), (db) => readCallFailure(db, id));
      if (!f) return null;
      return {
        body: envelope(m, callFailureView(f)),
        userId: null,
      };
    }
  }
}
