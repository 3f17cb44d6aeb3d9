/**
 * ERASE_AT_ELEVENLABS (issue 22): an erasure also deletes each of the user's stored conversations at
 * ElevenLabs, through each conversation's ledger's outbox, against the local stand-in for ElevenLabs'
 * API (test/global/elevenlabs-api.ts), which is told to fail some deletes first: exactly one successful
 * delete per conversation, through a 429 and 5xx, and the erasure's record says how each went.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { apiJson, u } from "./api-helpers";
import { conversationIdOf } from "./fake-api/data";
import { drainWithAlarm } from "./faults";
import { expectLogs, outboxFailure } from "./logs";
import { API_KEY, BASE, flush, postWebhook, transcription, uid } from "./helpers";
import { base, startImport, waitForImport } from "./import-helpers";
import { conversationMemory, userMemory } from "./objects";
import { sendWith } from "./worker-with";

async function scriptDeletes(conversationId: string, statuses: number[]): Promise<void> {
  const res = await fetch(`${base}/__delete-script`, { method: "POST", body: JSON.stringify({ conversation_id: conversationId, statuses }) });
  expect(res.status).toBe(200);
}

/** The status of every DELETE the stand-in received for this conversation, in order. */
async function deletesOf(conversationId: string): Promise<number[]> {
  return (await (await fetch(`${base}/__deletes?conversation_id=${encodeURIComponent(conversationId)}`)).json<{ statuses: number[] }>()).statuses;
}

function deleteUser(userId: string, patch: Record<string, string>): Promise<Response> {
  return sendWith(patch, new Request(`${BASE}/v1/users/${u(userId)}`, { method: "DELETE", headers: { Authorization: `Bearer ${API_KEY}` } }));
}

/** Polls the erasure's record until `done` holds (each ledger's alarm retries on its own). A hang guard, not a timing assertion. */
async function recordWhen(erasureId: string, done: (r: any) => boolean): Promise<any> {
  for (let i = 0; i < 600; i++) {
    const r = await apiJson("GET", `/v1/erasures/${erasureId}`);
    if (done(r)) return r;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`erasure ${erasureId} did not get there: ${JSON.stringify(await apiJson("GET", `/v1/erasures/${erasureId}`))}`);
}

describe("ERASE_AT_ELEVENLABS", () => {
  it("deletes each stored conversation at ElevenLabs exactly once, through a 429 and 5xx, and the record shows them done", async () => {
    const userId = "del-u0";
    const imported = [0, 1, 2].map((j) => conversationIdOf("agent_deleted", j));
    expect(await waitForImport(await startImport({ agent_id: "agent_deleted" }))).toMatchObject({ status: "done", imported: 3 });
    // Three more by webhook: one ElevenLabs answers normally, one it refuses for good (422), one it no longer has (404: done).
    const [plain, refused, gone] = [transcription({ userId }), transcription({ userId }), transcription({ userId })];
    for (const e of [plain, refused, gone]) expect((await postWebhook(e)).status).toBe(200);
    await flush(userId, "");
    const [c0, c1, c2] = imported as [string, string, string];
    const [w1, w2, w3] = [plain["data"].conversation_id as string, refused["data"].conversation_id as string, gone["data"].conversation_id as string];
    await scriptDeletes(c0, [429]);
    await scriptDeletes(c1, [500]);
    // More 5xx than the client's own five attempts: the ledger's outbox retries it later.
    await scriptDeletes(c2, [500, 502, 503, 500, 504]);
    // The client's five attempts spent, the ledger's outbox logs the failed attempt and retries it.
    expectLogs(outboxFailure(/ElevenLabs answered 504 for \/v1\/convai\/conversations\/del-c2/));
    await scriptDeletes(w2, [422]);
    await scriptDeletes(w3, [404]);

    const res = await deleteUser(userId, { ERASE_AT_ELEVENLABS: "true" });
    expect(res.status, await res.clone().text()).toBe(200);
    const { erasure_id: erasureId, deleted } = await res.json<any>();
    expect(deleted.conversations).toBe(6);

    // postcall's copies are gone at once; ElevenLabs' go as each ledger's outbox gets through (c2 takes seconds of backoff).
    expect(await apiJson("GET", `/v1/erasures/${erasureId}`)).toMatchObject({ state: "deleting_at_elevenlabs", elevenlabs: { requested: true } });
    const record = await recordWhen(erasureId, (r) => r.elevenlabs.pending === 0);
    expect(record).toMatchObject({
      state: "done_with_failures",
      conversations_erased: 6,
      elevenlabs: { requested: true, done: 5, failed: 1, pending: 0, last_status: 422 },
    });
    const expected = { [c0]: [429, 200], [c1]: [500, 200], [c2]: [500, 502, 503, 500, 504, 200], [w1]: [200], [w2]: [422], [w3]: [404] };
    const seen = async () => Object.fromEntries(await Promise.all(Object.keys(expected).map(async (id) => [id, await deletesOf(id)])));
    expect(await seen()).toEqual(expected);

    // Nothing more is asked: each ledger's outbox is empty, and a repeated DELETE finds nothing to delete.
    for (const id of [...imported, w1, w2, w3]) expect(await drainWithAlarm(conversationMemory(env, id))).toBe(0);
    const again = await deleteUser(userId, { ERASE_AT_ELEVENLABS: "true" });
    expect((await again.json<any>()).deleted.conversations).toBe(0);
    for (const id of [...imported, w1, w2, w3]) expect(await drainWithAlarm(conversationMemory(env, id))).toBe(0);
    expect(await seen()).toEqual(expected);
    // At the source they are gone: the stand-in no longer serves them.
    expect((await fetch(`${base}/v1/convai/conversations/${c0}`, { headers: { "xi-api-key": "xi-test-key-never-logged" } })).status).toBe(404);
  });

  it("refuses ERASE_AT_ELEVENLABS without ELEVENLABS_API_KEY before erasing anything", async () => {
    const userId = uid("no_key");
    const event = transcription({ userId });
    expect((await postWebhook(event)).status).toBe(200);
    const res = await deleteUser(userId, { ERASE_AT_ELEVENLABS: "true", ELEVENLABS_API_KEY: "" });
    expect(res.status).toBe(500);
    expect((await res.json<any>()).error).toMatchObject({ code: "misconfigured", message: expect.stringContaining("ERASE_AT_ELEVENLABS") });
    expect((await userMemory(env, userId).describe())?.profile.call_count).toBe(1);
    expect((await apiJson("GET", `/v1/erasures?user_id=${u(userId)}`)).erasures).toEqual([]);
  });

  it("asks ElevenLabs nothing when it is off (the default)", async () => {
    const userId = uid("local_only");
    const event = transcription({ userId });
    expect((await postWebhook(event)).status).toBe(200);
    const { erasure_id: erasureId } = await apiJson("DELETE", `/v1/users/${u(userId)}`);
    expect(await apiJson("GET", `/v1/erasures/${erasureId}`)).toMatchObject({ state: "done", elevenlabs: { requested: false, done: 0, pending: 0 } });
    expect(await drainWithAlarm(conversationMemory(env, event["data"].conversation_id))).toBe(0);
    expect(await deletesOf(event["data"].conversation_id)).toEqual([]);
  });
});
