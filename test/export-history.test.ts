/**
 * The export covers fact history (src/memory/facts.ts) and, under MEMORY_SCOPE="agent", the user's
 * memory with every agent: the right of access reaches everything erasure would remove.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { API_KEY, BASE, nowSeconds, signatureHeader, transcription, uid } from "./helpers";

type Line = { type: string; [k: string]: any };

async function send(req: Request, patch: Record<string, string>): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(req as Request<unknown, IncomingRequestCfProperties>, { ...env, ...patch } as typeof env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

async function webhook(event: object, patch: Record<string, string>): Promise<void> {
  const body = JSON.stringify(event);
  const headers = { "Content-Type": "application/json", "ElevenLabs-Signature": await signatureHeader(body) };
  const res = await send(new Request(`${BASE}/webhooks/elevenlabs`, { method: "POST", headers, body }), patch);
  expect(res.status, await res.clone().text()).toBe(200);
}

async function exportOf(userId: string, patch: Record<string, string>): Promise<Line[]> {
  const res = await send(new Request(`${BASE}/v1/users/${encodeURIComponent(userId)}/export`, { headers: { Authorization: `Bearer ${API_KEY}` } }), patch);
  expect(res.status).toBe(200);
  const text = new TextDecoder().decode(await res.arrayBuffer());
  return text.trim().split("\n").map((l) => JSON.parse(l) as Line);
}

describe("export: fact history and agent scopes", () => {
  it("carries a fact's earlier values with when each was true", async () => {
    const userId = uid("hist");
    await webhook(transcription({ userId, startedAt: nowSeconds() - 7200, facts: { dentist: "Dr. Patel" } }), {});
    await webhook(transcription({ userId, startedAt: nowSeconds() - 3600, facts: { dentist: "Dr. Okafor" } }), {});
    const fact = (await exportOf(userId, {})).find((l) => l.type === "fact" && l["id"] === "dentist")!;
    expect(fact["value"]).toBe("Dr. Okafor");
    expect(fact["history"]).toEqual([expect.objectContaining({ value: "Dr. Patel", valid_from: expect.any(String), valid_to: expect.any(String) })]);
  });

  it("includes the user's memory with each agent under MEMORY_SCOPE=agent", async () => {
    const scope = { MEMORY_SCOPE: "agent" };
    const userId = uid("scoped");
    const a = uid("agent_a");
    const b = uid("agent_b");
    const withAgent = (agentId: string, startedAt: number, plan: string) => {
      const e = transcription({ userId, startedAt, facts: { plan } });
      e["data"].agent_id = agentId;
      return e;
    };
    await webhook(withAgent(a, nowSeconds() - 600, "pro"), scope);
    await webhook(withAgent(b, nowSeconds() - 300, "team"), scope);
    const lines = await exportOf(userId, scope);
    const memories = lines.filter((l) => l.type === "memory" && l["agent_id"] !== undefined);
    expect(memories.map((m) => m["agent_id"]).sort()).toEqual([a, b].sort());
    const facts = lines.filter((l) => l.type === "fact").map((f) => [f["agent_id"], f["value"]]);
    expect(facts).toEqual(expect.arrayContaining([[a, "pro"], [b, "team"]]));
    expect(lines.at(-1)).toMatchObject({ type: "end" });
  });
});
