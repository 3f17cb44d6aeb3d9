/**
 * GET /v1/users/:id/memory names the user's agent-scoped memories (MEMORY_SCOPE="agent"), so the
 * console's user page can show them; read in either setting, as erasure and export find them.
 */
import { describe, expect, it } from "vitest";
import { API_KEY, BASE, nowSeconds, transcription, uid } from "./helpers";
import { sendWith, webhookWith } from "./worker-with";

const memoryOf = async (userId: string, patch: Record<string, string>) => {
  const res = await sendWith(patch, new Request(`${BASE}/v1/users/${encodeURIComponent(userId)}/memory`, { headers: { Authorization: `Bearer ${API_KEY}` } }));
  expect(res.status, await res.clone().text()).toBe(200);
  return res.json<{ scopes: string[] }>();
};

describe("GET /v1/users/:id/memory: scopes", () => {
  it("lists the agents that hold a memory of the user, and none under MEMORY_SCOPE=user", async () => {
    const userId = uid("scopes");
    const [a, b] = [uid("agent_a"), uid("agent_b")];
    for (const [agent, ago] of [[a, 600], [b, 300]] as const) {
      const e = transcription({ userId, startedAt: nowSeconds() - ago });
      e["data"].agent_id = agent;
      await webhookWith({ MEMORY_SCOPE: "agent" }, e);
    }
    expect((await memoryOf(userId, { MEMORY_SCOPE: "agent" })).scopes.sort()).toEqual([a, b].sort());
    expect((await memoryOf(userId, {})).scopes.sort()).toEqual([a, b].sort());

    const plain = uid("one_memory");
    await webhookWith({}, transcription({ userId: plain }));
    expect((await memoryOf(plain, {})).scopes).toEqual([]);
  });
});
