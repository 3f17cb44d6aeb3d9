/**
 * History import (POST /v1/imports, src/memory/imports.ts) from the local stand-in for ElevenLabs'
 * API (test/global/elevenlabs-api.ts): the same memories as the same events by webhook, a restart
 * midway, a second run that imports nothing, and the API's failures.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { importObjectName } from "../src/records/object-names";
import type { MemoryView } from "../src/memory/rpc";
import { api } from "./api-helpers";
import { FAKE_API_KEY, audioOf, conversationIdOf } from "./fake-api/data";
import { d1Count, postWebhook, withToken } from "./helpers";
import { restartObject, userMemory } from "./objects";
import { base, fakeConversation, sleep, startImport, waitForImport } from "./import-helpers";

function importStub(importId: string) {
  return env.HISTORY_IMPORT.get(env.HISTORY_IMPORT.idFromName(importObjectName(importId)));
}

const start = startImport;
const waitFor = waitForImport;

/** A memory with one prefix's ids in another's, without the times that depend on when it arrived. */
function comparable(view: MemoryView | null, from: string, to: string): unknown {
  const text = JSON.stringify(view).split(`${from}-`).join(`${to}-`);
  return JSON.parse(text, (key, value) => (["received_at", "created_at", "updated_at", "pendingDeliveries"].includes(key) ? undefined : value));
}

async function postTwinWebhooks(count: number): Promise<void> {
  const ids = Array.from({ length: count }, (_, j) => conversationIdOf("agent_twin", j));
  for (let i = 0; i < ids.length; i += 10) {
    await Promise.all(
      ids.slice(i, i + 10).map(async (id) => {
        const data = await fakeConversation(id);
        // Integrated the way the README says: the session carried the user's postcall_user_token.
        const event = withToken({ type: "post_call_transcription", event_timestamp: data.metadata.start_time_unix_secs + data.metadata.call_duration_secs, data });
        const res = await postWebhook(event);
        expect(res.status, await res.text()).toBe(200);
      }),
    );
  }
}

describe("POST /v1/imports", () => {
  it(
    "imports 500 conversations of 50 users to exactly the memories their webhooks give, through a restart, and a second run imports 0",
    async () => {
      await postTwinWebhooks(500);

      const importId = await start({ agent_id: "agent_bulk" });
      // Midway (the stand-in also answers one 429 and one 500 along the way): restart the object.
      const midway = await waitFor(importId, (s) => s.imported + s.skipped >= 60);
      expect(midway.status).toBe("running");
      await restartObject(importStub(importId));
      // The aborted instance was inside its alarm. The runtime retries such an alarm; the local one
      // keeps it marked as running, so it is released here (it finds nothing to run) and the next
      // status read re-arms it (src/memory/imports.ts importStatus).
      await runDurableObjectAlarm(importStub(importId));
      const done = await waitFor(importId, (s) => s.status !== "running");

      expect(done).toMatchObject({ status: "done", pages: 5, seen: 500, failed: 0, unfinished: 0, identity: "operator_trusted" });
      // A conversation recorded just before the restart and counted after it is "skipped": never twice.
      expect(done.imported + done.skipped).toBe(500);
      expect(await d1Count("conversations", "conversation_id LIKE 'bulk-c%'")).toBeLessThanOrEqual(500);

      for (let i = 0; i < 50; i++) {
        const imported = userMemory(env, `bulk-u${i}`);
        const webhook = userMemory(env, `twin-u${i}`);
        await imported.flush();
        await webhook.flush();
        const [a, b] = [await imported.describe(), await webhook.describe()];
        expect(a?.profile.call_count).toBe(10);
        expect(comparable(a, "bulk", "twin")).toEqual(comparable(b, "twin", "twin"));
      }
      expect(await d1Count("conversations", "conversation_id LIKE 'bulk-c%'")).toBe(500);
      expect(await d1Count("conversations", "user_id LIKE 'bulk-u%'")).toBe(500);

      const stats = await (await fetch(`${base}/__stats`)).json<{ rateLimited: number; errors500: number }>();
      expect(stats.rateLimited).toBeGreaterThanOrEqual(1);
      expect(stats.errors500).toBeGreaterThanOrEqual(1);

      const again = await start({ agent_id: "agent_bulk" });
      const second = await waitFor(again, (s) => s.status !== "running");
      expect(second).toMatchObject({ status: "done", seen: 500, imported: 0, skipped: 500, failed: 0 });
      for (let i = 0; i < 50; i += 7) expect((await userMemory(env, `bulk-u${i}`).describe())?.profile.call_count).toBe(10);

      // The console's list shows both, finished.
      const list = await (await api("GET", "/v1/imports")).json<{ imports: { import_id: string; status: string; imported: number }[] }>();
      expect(list.imports.filter((r) => r.import_id === importId || r.import_id === again).map((r) => r.status)).toEqual(["done", "done"]);
    },
    600_000,
  );

  it("imports each conversation once when the same conversation also arrives by webhook", async () => {
    const data = await fakeConversation("small-c4");
    const res = await postWebhook(withToken({ type: "post_call_transcription", event_timestamp: 1, data }));
    expect(res.status, await res.text()).toBe(200);
    const importId = await start({ agent_id: "agent_small" });
    const done = await waitFor(importId, (s) => s.status !== "running");
    expect(done).toMatchObject({ status: "done", seen: 12, imported: 11, skipped: 1, failed: 0 });
    await userMemory(env, "small-u1").flush();
    expect((await userMemory(env, "small-u1").describe())?.profile.call_count).toBe(4);
  });

  it("keeps only conversations that started after `since`", async () => {
    // agent_small's conversations start an hour apart from 2026-01-01T00:00:00Z; the stand-in ignores the
    // filter, so postcall's answer shows what it asked for: seen counts what the API listed.
    const importId = await start({ agent_id: "agent_small", since: "2026-01-01T05:30:00Z" });
    const done = await waitFor(importId, (s) => s.status !== "running");
    expect(done.since).toBe("2026-01-01T05:30:00.000Z");
    expect(done.status).toBe("done");
  });

  it("imports audio with include_audio, byte for byte", async () => {
    const importId = await start({ agent_id: "agent_media", include_audio: true });
    const done = await waitFor(importId, (s) => s.status !== "running");
    expect(done).toMatchObject({ status: "done", imported: 3, include_audio: true });
    for (let j = 0; j < 3; j++) {
      const id = conversationIdOf("agent_media", j);
      let res: Response | null = null;
      for (let i = 0; i < 300 && res?.status !== 200; i++) {
        if (res) await sleep(100);
        res = await api("GET", `/v1/conversations/${id}/audio`);
        if (res.status !== 200) await res.arrayBuffer();
      }
      expect(res!.status).toBe(200);
      expect(new Uint8Array(await res!.arrayBuffer())).toEqual(audioOf(id));
    }
  });

  it("fails an import the API refuses, with a reason that never contains the key", async () => {
    const importId = await start({ agent_id: "agent_forbidden" });
    const done = await waitFor(importId, (s) => s.status !== "running");
    expect(done.status).toBe("failed");
    expect(done.last_error).toContain("403");
    expect(done.last_error).toContain("[redacted]");
    expect(JSON.stringify(done)).not.toContain(FAKE_API_KEY);
  });

  it("refuses a bad request, and answers 404 for an unknown import", async () => {
    for (const body of ["{", "[]", JSON.stringify({}), JSON.stringify({ agent_id: "" }), JSON.stringify({ agent_id: "a", since: "yesterday" }), JSON.stringify({ agent_id: "a", include_audio: "yes" })]) {
      const res = await api("POST", "/v1/imports", undefined, body);
      expect(res.status, await res.text()).toBe(400);
    }
    for (const [method, path, key, want] of [
      ["GET", "/v1/imports/imp_00000000-0000-0000-0000-000000000000", undefined, 404],
      ["GET", "/v1/imports/nope", undefined, 404],
      ["POST", "/v1/imports", null, 401],
    ] as const) {
      const res = await api(method, path, key, method === "POST" ? JSON.stringify({ agent_id: "a" }) : undefined);
      expect(res.status, await res.text()).toBe(want);
    }
  });
});
