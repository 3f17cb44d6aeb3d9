/** The health page counts forwarding's dead letters (GET /v1/health/details `forwarding`, problem `forwarding_failures`). */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { removeFailure, storeFailure } from "../src/storage/forwarding";
import { codes, health } from "./health-helpers";
import { nowSeconds, uid } from "./helpers";

describe("health: forwarding failures", () => {
  it("shows dead letters by destination, and the warning goes once they are gone", async () => {
    const before = await health();
    expect(before.forwarding).toMatchObject({ failures: 0, by_destination: [] });
    expect(codes(before)).not.toContain("forwarding_failures");

    const ids = [uid("fail"), uid("fail"), uid("fail")];
    const t = nowSeconds() - 120;
    for (const [i, failureId] of ids.entries()) {
      // Test setup through the storage function the dead-letter consumer uses (docs/contract-tests.md, "Test seams").
      await storeFailure(env.DB, failureId, {
        v: 1,
        dead: true,
        message: { v: 1, id: `evt_${i}`, event: { type: "conversation.stored", conversationId: `c${i}` }, destination: i < 2 ? "crm" : "slack" } as never,
        status: 400,
        error: "HTTP 400",
        attempts: 1,
        userId: "u",
        failedAt: t + i,
      });
    }
    const after = await health();
    expect(after.forwarding).toMatchObject({
      failures: 3,
      by_destination: [
        { destination: "crm", failures: 2 },
        { destination: "slack", failures: 1 },
      ],
    });
    expect(after.forwarding!.oldest_failed_at).toBe(new Date(t * 1000).toISOString());
    expect(codes(after)).toContain("forwarding_failures");

    for (const id of ids) await removeFailure(env.DB, id);
    expect(codes(await health())).not.toContain("forwarding_failures");
  });
});
