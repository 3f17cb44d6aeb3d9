/**
 * One user.erased per erasure per destination (issue 22), also when the user has memories with
 * several agents (MEMORY_SCOPE="agent"): each scoped memory is erased as part of the user's erasure
 * and announces nothing of its own; the user's object announces once, and the record counts it.
 */
import { describe, expect, it } from "vitest";
import { apiJson, u } from "../api-helpers";
import { transcription, uid } from "../helpers";
import { webhookWith } from "../worker-with";
import { about, accepted, arrived, received } from "./helpers";

const userErased = async (path: string, userId: string) => about(await received(path), userId).filter((d) => d.event?.type === "user.erased");

describe("user.erased", () => {
  it("is forwarded once per destination for a user with memories with two agents", async () => {
    const userId = uid("fwd_scoped");
    const conversations: string[] = [];
    for (const agent of ["agent_one", "agent_two"]) {
      const event = transcription({ userId });
      event["data"].agent_id = agent;
      await webhookWith({ MEMORY_SCOPE: "agent" }, event);
      conversations.push(event["data"].conversation_id);
    }
    // Both calls' conversation.stored delivered first: an erasure racing them would leave each one
    // "not sent: what it reports was erased meanwhile" (logged), depending on timing.
    for (const path of ["/crm", "/warehouse"]) for (const id of conversations) await arrived(path, id, "conversation.stored");
    const { erasure_id: erasureId } = await apiJson("DELETE", `/v1/users/${u(userId)}`);
    await arrived("/crm", userId, "user.erased");
    await arrived("/warehouse", userId, "user.erased");
    // Whatever else was going to arrive has had time to (the Queue's batches wait at most a second).
    await new Promise((r) => setTimeout(r, 2500));
    for (const path of ["/crm", "/warehouse"]) {
      const ds = await userErased(path, userId);
      expect(new Set(ds.map((d) => d.id)).size, path).toBe(1);
      expect(accepted(ds), path).toHaveLength(1);
    }
    expect(await apiJson("GET", `/v1/erasures/${erasureId}`)).toMatchObject({ state: "done", deleted: { scopes: 2, d1: { conversations: 2 } }, forwarded: { user_erased: 2 } });
  });
});
