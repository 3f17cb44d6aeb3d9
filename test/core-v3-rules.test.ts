/**
 * Core rules found broken by an outside check, written first (they fail on the tree they were written
 * against). Each test reaches the Worker through its HTTP routes and signed webhooks only.
 *   - tombstone at every audio entry point: an erased conversation's audio is never fetched back.
 *   - a memory is read only by its owner: the context cache never serves one memory for another.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sendWith, webhookWith } from "./worker-with";
import { api, u } from "./api-helpers";
import { audioEvent, postChunked, sha256Hex } from "./audio-helpers";
import { injectBindings } from "./faults";
import { conversationMemory } from "./objects";
import { scopedObjectName } from "../src/records/object-names";
import { audioOf } from "./fake-api/data";
import { API_KEY, BASE, expectTokenFor, flush, postWebhook, transcription, uid } from "./helpers";

describe("an erased recording does not come back", () => {
  // Rule: tombstone at every audio entry point (the on-demand audio backfill too).
  it("POST /v1/conversations/:id/audio/backfill after DELETE /v1/users/:id stores nothing and the audio stays 404", async () => {
    const userId = uid("erased_audio_user");
    // `aud-<bytes>_...`: the stand-in for ElevenLabs' API serves that many bytes of MP3 for it (test/fake-api/data.ts).
    const conversationId = uid("aud-40000");
    const event = transcription({ userId, conversationId }); // carries a valid postcall_user_token for userId
    expect((await postWebhook(event)).status).toBe(200);
    await flush(userId, conversationId);

    // Backed up on demand: stored, and served.
    const first = await api("POST", `/v1/conversations/${u(conversationId)}/audio/backfill`);
    expect(first.status, await first.clone().text()).toBe(201);
    expect(await first.json()).toMatchObject({ status: "stored", bytes: 40_000, sha256: await sha256Hex(audioOf(conversationId)!) });
    const served = await api("GET", `/v1/conversations/${u(conversationId)}/audio`);
    expect(served.status).toBe(200);
    expect(new Uint8Array(await served.arrayBuffer())).toEqual(audioOf(conversationId));
    await flush(null, conversationId); // the audio's D1 row, so the erasure has it to remove

    const erased = await api("DELETE", `/v1/users/${u(userId)}`);
    expect(erased.status, await erased.clone().text()).toBe(200);
    expect(await erased.json()).toMatchObject({ status: "erased", deleted: { conversations: 1, audio: 1 } });
    const gone = await api("GET", `/v1/conversations/${u(conversationId)}/audio`);
    expect(gone.status).toBe(404);
    await gone.arrayBuffer();

    // The same backfill again: ElevenLabs still has the audio, but the conversation was erased.
    // Refused as such (the webhook's audio for it is acknowledged and dropped: test/erase.test.ts).
    const again = await api("POST", `/v1/conversations/${u(conversationId)}/audio/backfill`);
    const againBody = await again.json<{ error?: { code: string } }>().catch(() => ({}) as { error?: { code: string } });
    // Soft, so that the audio route's answer below is checked (and reported) too.
    expect.soft(again.status, JSON.stringify(againBody)).toBe(410);
    expect.soft(againBody.error?.code).toBe("conversation_erased");
    await flush(null, conversationId);
    // Nothing was put back in R2 for it: the audio route still finds none.
    const after = await api("GET", `/v1/conversations/${u(conversationId)}/audio`);
    expect(after.status).toBe(404);
    await after.arrayBuffer();
  });
});

// MEMORY_SCOPE=agent with the per-isolate context cache on, through the Worker's own fetch with
// those settings (as test/recall-scope.test.ts switches MEMORY_SCOPE).
const SCOPED_AND_CACHED = { MEMORY_SCOPE: "agent", CONTEXT_CACHE_SECONDS: "30" };

const send = (req: Request) => sendWith(SCOPED_AND_CACHED, req);
const webhook = (event: object) => webhookWith(SCOPED_AND_CACHED, event);

/** GET /v1/users/:id/context (with `agent_id` when given): the variables, after checking the token names that user. */
async function contextOf(userId: string, agentId: string | null): Promise<Record<string, unknown>> {
  const q = agentId === null ? "" : `?agent_id=${u(agentId)}`;
  const res = await send(new Request(`${BASE}/v1/users/${u(userId)}/context${q}`, { headers: { Authorization: `Bearer ${API_KEY}` } }));
  expect(res.status, await res.clone().text()).toBe(200);
  const vars = (await res.json<{ dynamic_variables: Record<string, unknown> }>()).dynamic_variables;
  await expectTokenFor(vars["postcall_user_token"], userId);
  return vars;
}

/** A conversation of `userId` with agent `agentId`, stored by signed webhook in agent scope. */
async function storeWithAgent(userId: string, agentId: string, title: string): Promise<void> {
  const event = transcription({ userId, title });
  event["data"].agent_id = agentId;
  await webhook(event);
}

describe("MEMORY_SCOPE=agent with CONTEXT_CACHE_SECONDS=30", () => {
  // Rule: a memory is read only by its owner (a user whose id is a scoped object's name reads nothing of it).
  it("does not serve bob's memory with agent A to the user whose id is literally `agent:A:user:bob`", async () => {
    const bob = uid("bob");
    const agent = uid("agent_a");
    const lookalike = `agent:${agent}:user:${bob}`;
    await storeWithAgent(bob, agent, "Bob's private call");

    // Fills the per-isolate cache with bob's memory with agent A.
    expect(await contextOf(bob, agent)).toMatchObject({ call_count: 1, is_returning_user: true, previous_topics: "Bob's private call" });

    // Another user, who never called: no memory at all.
    const other = await contextOf(lookalike, null);
    expect(other).toMatchObject({ call_count: 0, is_returning_user: false, previous_topics: "" });
  });

  // Rule: a memory is read only by its owner (the mirror: the lookalike's cached empty memory is not bob's).
  it("still serves bob his own memory with agent A after the user `agent:A:user:bob` was read", async () => {
    const bob = uid("bob");
    const agent = uid("agent_a");
    const lookalike = `agent:${agent}:user:${bob}`;
    await storeWithAgent(bob, agent, "Bob's own call");

    // Fills the per-isolate cache with the lookalike's (empty) memory.
    expect(await contextOf(lookalike, null)).toMatchObject({ call_count: 0, is_returning_user: false });

    expect(await contextOf(bob, agent)).toMatchObject({ call_count: 1, is_returning_user: true, previous_topics: "Bob's own call" });
  });
});

describe("MEMORY_SCOPE=agent: a recording marks the memory its conversation is in", () => {
  // Rule: scope at every entry point (the audio's delivery tells the agent's memory, not the user's own).
  it("has_audio shows in the user's memory with that agent", async () => {
    const userId = uid("scoped_audio");
    const agent = uid("agent_s");
    const event = transcription({ userId, title: "With audio" });
    event["data"].agent_id = agent;
    const conversationId = event["data"].conversation_id as string;
    await webhook(event);
    const scoped = env.USER_MEMORY.get(env.USER_MEMORY.idFromName(scopedObjectName(agent, userId)));
    expect(await scoped.flush()).toMatchObject({ failed: 0, pending: 0 }); // the transcript is in D1
    // The ledger delivers the audio with the deployment's settings: agent scope, as the Worker's here.
    const restore = await injectBindings(conversationMemory(env, conversationId), { MEMORY_SCOPE: "agent" });
    const audio = audioEvent(new Uint8Array([0x49, 0x44, 0x33, 4, 5, 6]), { conversationId, agentId: agent });
    expect((await postChunked(audio.body)).status).toBe(200);
    // The transcript reached D1 first; the audio's delivery now finds its owner and agent there.
    expect(await flush(null, conversationId)).toMatchObject({ failed: 0, pending: 0 });
    await restore();
    const memory = await scoped.describe();
    expect(memory?.conversations.find((c) => c.conversation_id === conversationId)).toMatchObject({ has_audio: true });
  });
});

describe("an erased conversation's call failure", () => {
  // Rule: tombstone at every entry point of a conversation's ledger (call failures too).
  it("is acknowledged and dropped, not stored again", async () => {
    const conversationId = uid("erased_failure");
    await conversationMemory(env, conversationId).forgetConversation({ erased: true });
    const event = { type: "call_initiation_failure", event_timestamp: Math.floor(Date.now() / 1000), data: { conversation_id: conversationId, agent_id: "agent_x", failure_reason: "busy", metadata: { type: "sip", body: {} } } };
    const res = await postWebhook(event);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "dropped", reason: "erased", conversation_id: conversationId });
    expect(await conversationMemory(env, conversationId).outboxStatus()).toMatchObject({ pending: 0 });
  });
});
