/**
 * The user data API: what a user's memory holds, erasing a user everywhere, and phone links (the
 * rule and the two-object protocol are in src/memory/phone-links.ts).
 */
import { config, ConfigError } from "../lib/config";
import { apiKeyOf } from "../elevenlabs/api";
import type { Env } from "../lib/env";
import { ApiError, badRequest, json, notFound } from "../lib/errors";
import { normalisePhone } from "../records/identity";
import { initiationAnswer } from "../memory/context";
import { eraseUser } from "../memory/erasure";
import { memoryName, memoryObject } from "../memory/objects";
import { linkPhone, unlinkPhone } from "../memory/phone-links";
import type { MemoryView } from "../memory/rpc";
import { iso } from "../lib/time";
import { idParam } from "../lib/http/params";

function parseFact(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/** GET /v1/users/:userId/memory (`?agent_id=` in agent scope). 404 when nothing was ever stored for this id. */
export async function getMemory(env: Env, userId: string, agentId: string | null = null): Promise<Response> {
  const m = await memoryObject(env, memoryName(env, userId, agentId)).describe();
  if (m === null) throw notFound("user_not_found", "postcall holds no memory for this user.");
  return json(memoryJson(userId, m));
}

/** A memory as the API shows it (also the `memory` record and the facts and phone links of an export). */
export function memoryJson(userId: string, m: MemoryView) {
  const p = m.profile;
  return {
    user_id: userId,
    profile: {
      call_count: p.call_count,
      total_duration_secs: p.total_duration_secs,
      first_call_at: iso(p.first_call_at),
      last_call_at: iso(p.last_call_at),
      last_conversation_id: p.last_conversation_id,
      last_call_summary: p.last_call_summary,
      created_at: iso(p.created_at),
      updated_at: iso(p.updated_at),
    },
    recent_conversations: m.conversations.map((c) => ({
      conversation_id: c.conversation_id,
      started_at: iso(c.started_at),
      duration_secs: c.duration_secs,
      title: c.title,
      summary: c.summary,
      call_successful: c.outcome,
      received_at: iso(c.received_at),
    })),
    facts: m.facts.map((f) => ({
      id: f.fact_id,
      value: parseFact(f.value),
      conversation_id: f.conversation_id,
      collected_at: iso(f.collected_at),
      updated_at: iso(f.updated_at),
      // Fact history (src/objects/user-memory/facts.ts): earlier values, newest first, with when each was true.
      valid_from: iso(f.valid_from ?? f.collected_at),
      history: f.history.map((h) => ({ value: parseFact(h.value), conversation_id: h.conversation_id, valid_from: iso(h.valid_from), valid_to: iso(h.valid_to) })),
    })),
    phone_numbers: m.phones.map((ph) => ({
      phone_number: ph.phone_number,
      linked_at: iso(ph.linked_at),
      via: ph.via,
      conversation_id: ph.conversation_id,
    })),
    // When this id is itself a phone number: the app user it is linked to.
    linked_to:
      m.owner && m.owner.user_id !== null
        ? { user_id: m.owner.user_id, linked_at: iso(m.owner.linked_at), via: m.owner.via, conversation_id: m.owner.conversation_id }
        : null,
    pending_deliveries: m.pendingDeliveries,
    // POST /tools/recall's index: what it holds, and whether older conversations are still being indexed.
    recall_index: {
      conversations: m.recallIndex.conversations,
      documents: m.recallIndex.documents,
      text_bytes: m.recallIndex.bytes,
      backfill: m.recallIndex.backfillIndexed === null ? "done" : "pending",
    },
    erasing_since: iso(m.erasingSince),
    // MEMORY_SCOPE="agent": the agents that hold a memory of this user (read each with ?agent_id=).
    scopes: m.scopes ?? [],
  };
}

/**
 * DELETE /v1/users/:userId: erases the user's memory, every D1 row and R2 object of their
 * conversations, their call failures (by their phone numbers) and their phone links
 * (src/memory/erasure.ts). Safe to repeat: a second call finds nothing and reports zeros. If it
 * stops midway (5xx), calling it again finishes the job; until then the user's object delivers
 * nothing more to D1 or R2. Every erasure leaves a record (src/api/erasures.ts) and its entries in
 * the erasure ledger, which keep what it removed from coming back.
 */
export async function deleteUser(env: Env, userId: string): Promise<Response> {
  const atSource = config(env).eraseAtElevenLabs;
  // Refused before anything is erased: an erasure that silently left everything at ElevenLabs would be worse.
  if (atSource && apiKeyOf(env) === null) throw new ConfigError("ERASE_AT_ELEVENLABS", "is true, but ELEVENLABS_API_KEY is not set: nothing could be deleted at ElevenLabs");
  const report = await eraseUser(env, userId, { atSource });
  if (report === null) {
    throw new ApiError(503, "erasure_incomplete", "The erasure is large and was not finished in one request; repeat the DELETE to continue.", {
      "Retry-After": "1",
    });
  }
  return json({
    user_id: userId,
    status: "erased",
    // Its record (counts per store, and with ERASE_AT_ELEVENLABS the deletions there): GET /v1/erasures/:id.
    erasure_id: report.erasureId,
    deleted: { ...report.counts, phone_links: report.phoneLinks, memory_rows: report.memoryRows },
    // Memory recorded under these numbers before they were linked is the number's own: erase it
    // with DELETE /v1/users/<number> when the request covers it.
    unlinked_phone_numbers: report.unlinkedPhoneNumbers,
  });
}

function phoneParam(raw: string | undefined, env: Env): string {
  const text = idParam(raw, "phone_number");
  const phone = normalisePhone(text, config(env).defaultCountryCode);
  if (phone === null) throw badRequest("invalid_phone_number", "The phone number must be a valid number, ideally in E.164 (+14155550100).");
  return phone;
}

/**
 * PUT /v1/users/:userId/phones/:phoneNumber: the number now belongs to this user (a previous owner
 * loses it). Calls and initiation requests from the number then resolve to this user.
 */
export async function putPhoneLink(env: Env, userId: string, rawPhone: string | undefined): Promise<Response> {
  const phone = phoneParam(rawPhone, env);
  if (phone === userId) throw badRequest("invalid_phone_link", "A phone number cannot be linked to itself.");
  const now = Math.floor(Date.now() / 1000);
  await linkPhone(env, userId, phone, now);
  return json({ user_id: userId, phone_number: phone, linked: true, linked_at: iso(now) });
}

/** DELETE /v1/users/:userId/phones/:phoneNumber: removes the link if it exists; safe to repeat. */
export async function deletePhoneLink(env: Env, userId: string, rawPhone: string | undefined): Promise<Response> {
  const phone = phoneParam(rawPhone, env);
  const removed = await unlinkPhone(env, userId, phone, Math.floor(Date.now() / 1000));
  return json({ user_id: userId, phone_number: phone, removed });
}

/**
 * GET /v1/phones/:phoneNumber/initiation (`?agent_id=` in agent scope): the initiation webhook's
 * answer for a caller from this number, computed the same way (src/memory/context.ts
 * `initiationAnswer`) but not counted as a ring on the health page. For a linked number it is the
 * app user's memory, which is what the console's page of a number must show.
 */
export async function getInitiationPreview(env: Env, rawPhone: string | undefined, agentId: string | null): Promise<Response> {
  const phone = phoneParam(rawPhone, env);
  const { body, degraded } = await initiationAnswer(env, phone, Date.now(), agentId);
  return json(body, 200, degraded ? { "X-Postcall-Degraded": "memory_unavailable" } : {});
}
