/**
 * The user data API: what a user's memory holds, erasing a user everywhere, and phone links.
 *
 * Phone link rule (README "Phone callers"): a number belongs to at most one app user at a time, the
 * latest link wins. A link is forward-looking: memory gathered under the bare number before the link
 * stays with the number (`/v1/users/+E164/...`) and is not merged into the app user, so a link can be
 * removed without having to un-merge anything, and each conversation stays attributed as it was.
 */
import { config } from "../config";
import type { Env } from "../env";
import { ApiError, badRequest, json, notFound } from "../errors";
import { normalisePhone } from "../memory/identity";
import { userMemory } from "../memory/route";
import { contextCache } from "./context-cache";
import { addCounts, zeroCounts } from "../storage/erase";
import { iso } from "./conversations";
import { idParam } from "./params";

function parseFact(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/** GET /v1/users/:userId/memory. 404 when nothing was ever stored for this id. */
export async function getMemory(env: Env, userId: string): Promise<Response> {
  const m = await userMemory(env, userId).describe();
  if (m === null) throw notFound("user_not_found", "postcall holds no memory for this user.");
  const p = m.profile;
  return json({
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
    erasing_since: iso(m.erasingSince),
  });
}

/** Each erase step handles a bounded amount; this many steps cover tens of thousands of conversations. */
const MAX_ERASE_STEPS = 50;

/**
 * DELETE /v1/users/:userId: erases the user's memory, every D1 row and R2 object of their
 * conversations, their call failures (by their phone numbers) and their phone links. Safe to repeat:
 * a second call finds nothing and reports zeros. If it stops midway (5xx), calling it again finishes
 * the job; until then the user's object delivers nothing more to D1 or R2.
 */
export async function deleteUser(env: Env, userId: string): Promise<Response> {
  const stub = userMemory(env, userId);
  try {
    return await eraseSteps(stub, userId);
  } finally {
    // After the erasure, not only before: a context read in this isolate while it ran cached the
    // memory as it was, and would serve it after the 200 for up to CONTEXT_CACHE_SECONDS.
    contextCache.forget(userId);
  }
}

async function eraseSteps(stub: ReturnType<typeof userMemory>, userId: string): Promise<Response> {
  let counts = zeroCounts();
  let phoneLinks = 0;
  let memoryRows = 0;
  const unlinked: string[] = [];
  for (let i = 0; i < MAX_ERASE_STEPS; i++) {
    const step = await stub.erase(userId);
    counts = addCounts(counts, step.counts);
    phoneLinks += step.phoneLinks;
    memoryRows += step.memoryRows;
    unlinked.push(...step.unlinkedPhoneNumbers);
    if (step.done) {
      return json({
        user_id: userId,
        status: "erased",
        deleted: { ...counts, phone_links: phoneLinks, memory_rows: memoryRows },
        // Memory recorded under these numbers before they were linked is the number's own: erase it
        // with DELETE /v1/users/<number> when the request covers it.
        unlinked_phone_numbers: unlinked,
      });
    }
  }
  throw new ApiError(503, "erasure_incomplete", "The erasure is large and was not finished in one request; repeat the DELETE to continue.", {
    "Retry-After": "1",
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
  const user = userMemory(env, userId);
  const number = userMemory(env, phone);
  // The user's list first, then the number's owner (the truth): erasing the user always finds it.
  await user.addPhone(phone, now, "api");
  const res = await number.setOwner({ phoneNumber: phone, userId, at: now, via: "api", conversationId: null });
  if (res.owner !== userId) {
    await user.removePhone(phone, now);
    throw new ApiError(409, "phone_link_conflict", "A newer change to this number's link was recorded meanwhile; read the memory and retry.");
  }
  // Tell a displaced owner now rather than at the next alarm, so the answer is settled when it returns.
  await number.flush();
  contextCache.forget(phone);
  return json({ user_id: userId, phone_number: phone, linked: true, linked_at: iso(now) });
}

/** DELETE /v1/users/:userId/phones/:phoneNumber: removes the link if it exists; safe to repeat. */
export async function deletePhoneLink(env: Env, userId: string, rawPhone: string | undefined): Promise<Response> {
  const phone = phoneParam(rawPhone, env);
  const now = Math.floor(Date.now() / 1000);
  // The truth first, then the user's list.
  const a = await userMemory(env, phone).clearOwner(userId, now, "api");
  const b = await userMemory(env, userId).removePhone(phone, now);
  return json({ user_id: userId, phone_number: phone, removed: a.removed || b.removed });
}
