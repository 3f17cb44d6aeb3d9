/**
 * Core rules found broken by an outside check, written first (they fail on the tree they were written
 * against). Each test reaches the Worker through its HTTP routes and signed webhooks only.
 *   - tombstone at every audio entry point: an erased conversation's audio is never fetched back.
 *   - a memory is read only by its owner: the context cache never serves one memory for another.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { api, u } from "./api-helpers";
import { sha256Hex } from "./audio-helpers";
import { audioOf } from "./fake-api/data";
import { API_KEY, BASE, expectTokenFor, flush, postWebhook, signatureHeader, transcription, uid } from "./helpers";

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
    // Expected: an answer like the webhook's for erased audio, e.g. 200 {"status":"dropped","reason":"erased"}
    // (the exact answer is the implementer's choice); never 201 "stored".
    const again = await api("POST", `/v1/conversations/${u(conversationId)}/audio/backfill`);
    const againBody = await again.json<{ status?: string }>().catch(() => ({}) as { status?: string });
    // Soft, so that the audio route's answer below is checked (and reported) too.
    expect.soft(again.status, JSON.stringify(againBody)).not.toBe(201);
    expect.soft(againBody.status).not.toBe("stored");
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

async function send(req: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(req as Request<unknown, IncomingRequestCfProperties>, { ...env, ...SCOPED_AND_CACHED } as typeof env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

async function webhook(event: object): Promise<void> {
  const body = JSON.stringify(event);
  const res = await send(
    new Request(`${BASE}/webhooks/elevenlabs`, { method: "POST", headers: { "Content-Type": "application/json", "ElevenLabs-Signature": await signatureHeader(body) }, body }),
  );
  expect(res.status, await res.clone().text()).toBe(200);
}

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
