/**
 * Retention under MEMORY_SCOPE="agent": the daily sweep (src/cron/sweep.ts) catches what no alarm was
 * armed for (conversations stored before RETENTION_DAYS was set), in every agent's memory of a user,
 * not only in D1 and the user's own object: an expired conversation's detail (its entry in the recent
 * list, its recall windows) is kept in no scope past the setting.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sweepRetention } from "../src/cron/sweep";
import type { Env } from "../src/lib/env";
import { scopedObjectName } from "../src/records/object-names";
import { injectBindings } from "./faults";
import { d1Count, nowSeconds, uid } from "./helpers";
import { conversationWith } from "./recall-helpers";
import { webhookWith } from "./worker-with";

const AGENT_SCOPE = { MEMORY_SCOPE: "agent" };
// RETENTION_DAYS is 3650 in the test configuration.
const cutoff = () => nowSeconds() - 3650 * 86_400;

const scoped = (agentId: string, userId: string) => env.USER_MEMORY.get(env.USER_MEMORY.idFromName(scopedObjectName(agentId, userId)));

/** What an agent's memory of the user still holds of conversations that started before the cutoff. */
function expiredHeld(stub: DurableObjectStub, before: number): Promise<{ recent: number; recall: number }> {
  return runInDurableObject(stub, (_o, state) => {
    const count = (table: string) => state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE started_at < ?`, before).one().n;
    return { recent: count("conversations"), recall: count("recall_conversations") };
  });
}

describe("retention in agent-scoped memories", () => {
  it("the daily sweep trims every agent's memory of a user whose conversations were stored before RETENTION_DAYS was set", async () => {
    const user = uid("user");
    const agents = [uid("agent_a"), uid("agent_b")];
    const stubs = agents.map((a) => scoped(a, user));
    const ancient = nowSeconds() - 3651 * 86_400;

    // Written while retention was off in both objects: no retention alarm is armed for what they hold.
    const restores = await Promise.all(stubs.map((s) => injectBindings(s, { RETENTION_DAYS: undefined } as Partial<Env>)));
    try {
      for (const a of agents) await webhookWith(AGENT_SCOPE, conversationWith([["user", "I kept bees on the roof of the depot."]], { userId: user, agentId: a, startedAt: ancient }));
      await webhookWith(AGENT_SCOPE, conversationWith([["user", "I sold the beehives last week."]], { userId: user, agentId: agents[0]! }));
      for (const s of stubs) expect(await s.flush()).toMatchObject({ failed: 0, pending: 0 });
    } finally {
      for (const restore of restores) await restore();
    }
    expect(await d1Count("conversations", "user_id = ?", user)).toBe(3);
    for (const s of stubs) expect(await expiredHeld(s, cutoff())).toEqual({ recent: 1, recall: 1 });

    await sweepRetention({ ...env, ...AGENT_SCOPE } as Env);

    expect(await d1Count("conversations", "user_id = ?", user)).toBe(1);
    for (const s of stubs) expect(await expiredHeld(s, cutoff())).toEqual({ recent: 0, recall: 0 });
    // The recent call stays, in its agent's memory.
    const kept = await runInDurableObject(stubs[0]!, (_o, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM conversations").one().n);
    expect(kept).toBe(1);
  });
});
