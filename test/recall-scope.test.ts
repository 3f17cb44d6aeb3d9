/** MEMORY_SCOPE="agent": one memory per agent and user, for every read, write, recall and erasure. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sendWith, webhookWith } from "./worker-with";
import { scopedObjectName } from "../src/records/object-names";
import { API_KEY, BASE, d1Count, uid } from "./helpers";
import { conversationWith, recallRequest, tokenFor, type RecallAnswer } from "./recall-helpers";

const AGENT_SCOPE = { MEMORY_SCOPE: "agent" };

const send = (req: Request, patch: Record<string, string> = AGENT_SCOPE) => sendWith(patch, req);
const webhook = (event: object) => webhookWith(AGENT_SCOPE, event);

async function recallAs(userId: string, query: string, agentId: string | null, patch?: Record<string, string>): Promise<RecallAnswer> {
  const res = await send(recallRequest({ query, user_token: await tokenFor(userId), limit: 20, ...(agentId !== null ? { agent_id: agentId } : {}) }), patch);
  expect(res.status).toBe(200);
  return res.json<RecallAnswer>();
}

const get = (path: string, patch?: Record<string, string>) =>
  send(new Request(`${BASE}${path}`, { headers: { Authorization: `Bearer ${API_KEY}` } }), patch);

describe("MEMORY_SCOPE=agent", () => {
  it("keeps two agents' memories of one user apart: recall, context and memory", async () => {
    const user = uid("user");
    const a = uid("agent_a");
    const b = uid("agent_b");
    const ea = conversationWith([["user", "I play the violin in an orchestra."]], { userId: user, agentId: a, title: "Music with A" });
    const eb = conversationWith([["user", "I play the violin and the trombone."]], { userId: user, agentId: b, title: "Music with B" });
    await webhook(ea);
    await webhook(eb);

    const forA = await recallAs(user, "violin", a);
    const forB = await recallAs(user, "violin", b);
    expect(forA.results.length).toBeGreaterThan(0);
    expect(forA.results.every((r) => r.conversation_id === ea["data"].conversation_id)).toBe(true);
    expect(forB.results.length).toBeGreaterThan(0);
    expect(forB.results.every((r) => r.conversation_id === eb["data"].conversation_id)).toBe(true);
    expect((await recallAs(user, "trombone", a)).results).toEqual([]);
    // Without an agent id no agent's memory is read.
    expect(await recallAs(user, "violin", null)).toMatchObject({ results: [], reason: "bad_request" });

    const ctx = async (agent: string | null) => {
      const q = agent === null ? "" : `?agent_id=${encodeURIComponent(agent)}`;
      const res = await get(`/v1/users/${encodeURIComponent(user)}/context${q}`);
      expect(res.status).toBe(200);
      return (await res.json<{ dynamic_variables: Record<string, unknown> }>()).dynamic_variables;
    };
    expect(await ctx(a)).toMatchObject({ call_count: 1, previous_topics: "Music with A" });
    expect(await ctx(b)).toMatchObject({ call_count: 1, previous_topics: "Music with B" });
    expect(await ctx(null)).toMatchObject({ call_count: 0 });

    const memA = await (await get(`/v1/users/${encodeURIComponent(user)}/memory?agent_id=${encodeURIComponent(a)}`)).json<any>();
    expect(memA.recent_conversations.map((c: any) => c.conversation_id)).toEqual([ea["data"].conversation_id]);

    // The same deployment in user scope (the default) never had either agent's memory under the user's object.
    expect((await recallAs(user, "violin", a, {})).results).toEqual([]);
  });

  it("erasing the user erases every scope", async () => {
    const user = uid("user");
    const a = uid("agent_a");
    const b = uid("agent_b");
    await webhook(conversationWith([["user", "My locker code is 4417."]], { userId: user, agentId: a, facts: { locker: "4417" } }));
    await webhook(conversationWith([["user", "My locker is on floor two."]], { userId: user, agentId: b }));
    expect((await recallAs(user, "locker", a)).results.length).toBeGreaterThan(0);
    expect((await recallAs(user, "locker", b)).results.length).toBeGreaterThan(0);

    // Delivered to D1 first, so the erasure has rows to remove there too.
    for (const agent of [a, b]) {
      const stub = env.USER_MEMORY.get(env.USER_MEMORY.idFromName(scopedObjectName(agent, user)));
      expect(await stub.flush()).toMatchObject({ failed: 0, pending: 0 });
    }
    expect(await d1Count("conversations", "user_id = ?", user)).toBe(2);

    // Erased from a deployment whose setting is back to "user": the registry still finds both scopes.
    const del = await send(new Request(`${BASE}/v1/users/${encodeURIComponent(user)}`, { method: "DELETE", headers: { Authorization: `Bearer ${API_KEY}` } }), {});
    expect(del.status, await del.clone().text()).toBe(200);

    expect((await recallAs(user, "locker", a)).results).toEqual([]);
    expect((await recallAs(user, "locker", b)).results).toEqual([]);
    for (const agent of [a, b]) {
      expect((await get(`/v1/users/${encodeURIComponent(user)}/memory?agent_id=${encodeURIComponent(agent)}`)).status).toBe(404);
    }
    expect(await d1Count("conversations", "user_id = ?", user)).toBe(0);
  });
});
