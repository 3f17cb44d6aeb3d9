/**
 * Erasure that lasts (issue 22): the erasure ledger and the marks the objects carry keep an erased
 * conversation from coming back by any path (an import next quarter from the stand-in for
 * ElevenLabs' API, a webhook redelivery, an attribution, an audio backfill), long after the 30-day
 * tombstone expired; a conversation that started after the erasure is remembered as ever. Nothing the
 * ledger or the record holds names the user or their conversations in clear.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { transcriptionArrived } from "../src/memory/arrival";
import type { Tombstones } from "../src/objects/shared/tombstone";
import { TOMBSTONE_SECONDS } from "../src/objects/shared/tombstone";
import { parseEnvelope } from "../src/records/payload";
import { api, apiJson, doTables, phoneNumber, u } from "./api-helpers";
import { conversationIdOf } from "./fake-api/data";
import { context, d1Count, flush, nowSeconds, postWebhook, r2Keys, transcription, uid, withToken } from "./helpers";
import { fakeApiHits, fakeConversation, startImport, waitForImport } from "./import-helpers";
import { conversationMemory, userMemory } from "./objects";

type Stub = ReturnType<typeof userMemory> | ReturnType<typeof conversationMemory>;

/**
 * "30 days pass" for one object: its tombstone expires, as its alarm expires it then (through the
 * tombstone module's own `expire`, given a time past the lifetime: docs/contract-tests.md "Test seams").
 */
async function tombstoneExpires(stub: Stub): Promise<void> {
  await runInDurableObject(stub, (instance) => {
    const tombstones = (instance as unknown as { tombstones: Tombstones }).tombstones;
    expect(tombstones.expire(nowSeconds() + TOMBSTONE_SECONDS + 60)).toBe(true);
  });
}

async function posted(event: object): Promise<{ status: string; reason?: string }> {
  const res = await postWebhook(event);
  expect(res.status).toBe(200);
  return res.json();
}

/** The conversation as the stand-in serves it, wrapped as its webhook would carry it. */
async function webhookOf(conversationId: string, token: boolean): Promise<Record<string, any>> {
  const data = await fakeConversation(conversationId);
  const event = { type: "post_call_transcription", event_timestamp: data["metadata"].start_time_unix_secs + 60, data };
  return token ? withToken(event) : event;
}

/** Every row of every D1 table (full-text shadow tables aside: they hold tokens, not rows), as one text. */
async function everythingInD1(): Promise<string> {
  const { results } = await env.DB.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE '%fts%'",
  ).all<{ name: string }>();
  const parts: string[] = [];
  for (const { name } of results) parts.push(JSON.stringify((await env.DB.prepare(`SELECT * FROM "${name}"`).all()).results));
  return parts.join("\n");
}

describe("the erasure ledger", () => {
  it("keeps an imported user's conversations erased after the tombstone expired: a second import, a redelivery, an attribution and a backfill bring nothing back; a later call is remembered", async () => {
    const userId = "aud-1200-era-u0";
    const ids = [0, 1, 2].map((j) => conversationIdOf("agent_erased", j));
    expect(await waitForImport(await startImport({ agent_id: "agent_erased" }))).toMatchObject({ status: "done", imported: 3 });
    await userMemory(env, userId).flush();
    expect(await d1Count("conversations", "user_id = ?", userId)).toBe(3);

    const erased = await apiJson("DELETE", `/v1/users/${u(userId)}`);
    expect(erased.deleted.conversations).toBe(3);
    const record = await apiJson(`GET`, `/v1/erasures/${erased.erasure_id}`);
    expect(record).toMatchObject({ erasure_id: erased.erasure_id, state: "done", conversations_erased: 3, deleted: { d1: { conversations: 3 } } });

    // Nothing in D1, the record or the objects' marks names the user or a conversation in clear.
    const d1 = await everythingInD1();
    for (const id of [userId, ...ids]) {
      expect(d1).not.toContain(id);
      expect(JSON.stringify(record)).not.toContain(id);
      expect(JSON.stringify(await apiJson("GET", "/v1/erasures"))).not.toContain(id);
    }
    const mark = await runInDurableObject(userMemory(env, userId), (_o, state) => state.storage.sql.exec("SELECT * FROM erasure_mark").toArray());
    for (const id of ids) expect(JSON.stringify(mark)).not.toContain(id);

    // 30 days later: every tombstone of the erasure has expired; the marks stay.
    for (const stub of [userMemory(env, userId), ...ids.map((id) => conversationMemory(env, id))]) await tombstoneExpires(stub);
    expect(await doTables(userId)).toEqual({ erasure_mark: 1 });
    expect(await doTables(ids[0]!, "conversation")).toEqual({ erasure_mark: 1 });

    // Next quarter's import of the same agent: each conversation is skipped before it is even fetched.
    const fetched = await fakeApiHits(`/v1/convai/conversations/${ids[0]}`);
    expect(await waitForImport(await startImport({ agent_id: "agent_erased", include_audio: true }))).toMatchObject({ status: "done", imported: 0, skipped: 3, failed: 0 });
    expect(await fakeApiHits(`/v1/convai/conversations/${ids[0]}`)).toBe(fetched);
    expect(await fakeApiHits(`/v1/convai/conversations/${ids[0]}/audio`)).toBe(0);

    // A redelivery, with its token (the user's object) or without (the conversation's own ledger).
    for (const id of ids) {
      expect(await posted(await webhookOf(id, true))).toMatchObject({ status: "dropped", reason: "erased" });
      expect(await posted(await webhookOf(id, false))).toMatchObject({ status: "dropped", reason: "erased" });
    }
    // An attribution, to anyone: nothing is left in D1 to attribute, and the arrival path itself refuses it.
    const someoneElse = uid("operator_pick");
    expect((await api("POST", `/v1/conversations/${u(ids[0]!)}/attribute`, undefined, JSON.stringify({ user_id: someoneElse }))).status).toBe(404);
    const raw = new TextEncoder().encode(JSON.stringify(await webhookOf(ids[0]!, false)));
    const arrived = await transcriptionArrived(env, parseEnvelope(raw), raw, { origin: "attribution", operatorUserId: someoneElse, receivedAt: nowSeconds() });
    expect(arrived.dropped).toBe("erased");
    expect((await api("GET", `/v1/users/${u(someoneElse)}/memory`)).status).toBe(404);
    // The on-demand audio backfill.
    const backfill = await api("POST", `/v1/conversations/${u(ids[1]!)}/audio/backfill`);
    expect(backfill.status).toBe(410);

    expect((await api("GET", `/v1/users/${u(userId)}/memory`)).status).toBe(404);
    for (const id of ids) {
      expect(await d1Count("conversations", "conversation_id = ?", id)).toBe(0);
      expect(await r2Keys(`conversations/${id}/`)).toEqual([]);
      expect((await api("GET", `/v1/conversations/${u(id)}/audio`)).status).toBe(404);
    }

    // A call that started after the erasure is remembered as any other.
    const later = transcription({ userId, startedAt: nowSeconds() + 1, title: "After the erasure" });
    expect(await posted(later)).toMatchObject({ status: "stored" });
    expect((await context(userId))["call_count"]).toBe(1);
  });

  it("answers a webhook without reading the D1 ledger: with its tables gone, an erased conversation's redelivery is still dropped (after the tombstone) and a new call stored", async () => {
    const userId = uid("hot_path");
    const held = transcription({ userId, startedAt: nowSeconds() - 60 });
    expect(await posted(held)).toMatchObject({ status: "stored" });
    const conversationId = held["data"].conversation_id as string;
    await flush(userId, conversationId);
    await apiJson("DELETE", `/v1/users/${u(userId)}`);
    for (const stub of [userMemory(env, userId), conversationMemory(env, conversationId)]) await tombstoneExpires(stub);

    // Storage is this file's own: the ledger's D1 tables are renamed away while the webhooks arrive, so
    // any D1 read of them on the way to the 200 would fail the request.
    const tables = ["erased_conversations", "erasure_keys", "erasures"];
    await env.DB.batch(tables.map((t) => env.DB.prepare(`ALTER TABLE ${t} RENAME TO hidden_${t}`)));
    try {
      expect(await posted(held)).toMatchObject({ status: "dropped", reason: "erased" });
      expect(await posted(withToken(held))).toMatchObject({ status: "dropped", reason: "erased" });
      expect(await posted(transcription({ userId, startedAt: nowSeconds() + 1 }))).toMatchObject({ status: "stored" });
    } finally {
      await env.DB.batch(tables.map((t) => env.DB.prepare(`ALTER TABLE hidden_${t} RENAME TO ${t}`)));
    }
    expect((await context(userId))["call_count"]).toBe(1);
  });

  it("drops a redelivery of a conversation the object held when the erasure began, even one that started in or after that second", async () => {
    const userId = uid("same_second");
    // ElevenLabs' clock a few seconds ahead of ours, or a call that began in the very second: the start-time rule alone lets it back in.
    const start = nowSeconds() + 5;
    const held = transcription({ userId, startedAt: start });
    expect(await posted(held)).toMatchObject({ status: "stored" });
    await flush(userId, held["data"].conversation_id);
    await apiJson("DELETE", `/v1/users/${u(userId)}`);

    expect(await posted(held)).toMatchObject({ status: "dropped", reason: "erased" });
    expect((await api("GET", `/v1/users/${u(userId)}/memory`)).status).toBe(404);
    // The rule is about that conversation, not that second: another call that started then is remembered.
    expect(await posted(transcription({ userId, startedAt: start }))).toMatchObject({ status: "stored" });
    expect((await context(userId))["call_count"]).toBe(1);
  });

  it("drops a phone-only conversation erased with the user its number was linked to, and keeps the number's own later ones", async () => {
    const userId = uid("linked_owner");
    const number = phoneNumber();
    const linking = transcription({ userId, externalNumber: number, startedAt: nowSeconds() - 300 });
    expect(await posted(linking)).toMatchObject({ status: "stored" });
    await flush(userId, linking["data"].conversation_id);
    const phoneOnly = transcription({ userId: null, externalNumber: number, startedAt: nowSeconds() - 200 });
    expect(await (await postWebhook(phoneOnly)).json()).toMatchObject({ status: "stored", user_id: userId });
    await flush(userId, phoneOnly["data"].conversation_id);
    const neverSent = transcription({ userId: null, externalNumber: number, startedAt: nowSeconds() - 100 });

    await apiJson("DELETE", `/v1/users/${u(userId)}`);
    // The number is no longer the user's: a redelivery reaches the number's own object, which asks the
    // conversation's ledger before it records anything.
    expect(await posted(phoneOnly)).toMatchObject({ status: "dropped", reason: "erased" });
    expect(await posted(neverSent)).toMatchObject({ status: "stored" });
    expect((await context(number))["call_count"]).toBe(1);
    expect((await context(userId))["call_count"]).toBe(0);
  });
});

describe("GET /v1/erasures", () => {
  it("lists erasures newest first in keyset pages, finds one user's by typing the id, and shows each record", async () => {
    const [first, second] = [uid("listed_a"), uid("listed_b")];
    const a = transcription({ userId: first });
    expect(await posted(a)).toMatchObject({ status: "stored" });
    await flush(first, a["data"].conversation_id);
    const erasedA = await apiJson("DELETE", `/v1/users/${u(first)}`);
    // A second later, so the order by start is not a tie.
    await new Promise((r) => setTimeout(r, 1100));
    const erasedB = await apiJson("DELETE", `/v1/users/${u(second)}`);

    // Pages of one, walked to the end: every erasure once, newest first (other tests' erasures among them).
    const walked: { erasure_id: string; began_at: string }[] = [];
    for (let cursor: string | null = null, i = 0; i === 0 || cursor !== null; i++) {
      const page: any = await apiJson("GET", `/v1/erasures?limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      walked.push(...page.erasures);
      cursor = page.next_cursor;
    }
    const all = (await apiJson("GET", "/v1/erasures?limit=100")).erasures;
    expect(walked.map((e) => e.erasure_id)).toEqual(all.map((e: any) => e.erasure_id));
    expect(new Set(walked.map((e) => e.erasure_id)).size).toBe(walked.length);
    expect(walked[0]!.erasure_id).toBe(erasedB.erasure_id);
    expect(walked.map((e) => e.erasure_id).indexOf(erasedA.erasure_id)).toBeGreaterThan(0);
    const starts = walked.map((e) => Date.parse(e.began_at));
    expect(starts).toEqual([...starts].sort((x, y) => y - x));

    const mine = await apiJson("GET", `/v1/erasures?user_id=${u(first)}`);
    expect(mine.erasures).toHaveLength(1);
    expect(mine.next_cursor).toBeNull();
    const record = mine.erasures[0];
    expect(record).toEqual(await apiJson("GET", `/v1/erasures/${erasedA.erasure_id}`));
    expect(record).toMatchObject({
      erasure_id: erasedA.erasure_id,
      subject: expect.stringMatching(/^[0-9a-f]{32}$/),
      state: "done",
      conversations_erased: 1,
      deleted: {
        memory_rows: erasedA.deleted.memory_rows,
        d1: { conversations: 1, turns: erasedA.deleted.turns, audio: 0, call_failures: 0 },
        r2_objects: erasedA.deleted.r2_objects,
        phone_links: 0,
        scopes: 0,
      },
      forwarded: { user_erased: 0 },
      elevenlabs: { requested: false, done: 0, failed: 0, pending: 0, last_status: null },
    });
    expect(Date.parse(record.finished_at)).toBeGreaterThanOrEqual(Date.parse(record.began_at));
    // The user postcall never knew still has a record of the request, with nothing found.
    expect((await apiJson("GET", `/v1/erasures?user_id=${u(second)}`)).erasures[0]).toMatchObject({ conversations_erased: 0, deleted: { memory_rows: 0 } });
    expect((await apiJson("GET", `/v1/erasures?user_id=${u(uid("never_erased"))}`)).erasures).toEqual([]);
  });

  it("answers only API_KEY, refuses bad queries, and 404s an unknown id", async () => {
    for (const [path, key, status, code] of [
      ["/v1/erasures", "test-agent-key", 403, "agent_key_not_allowed"],
      ["/v1/erasures/era_00000000-0000-0000-0000-000000000000", "test-agent-key", 403, "agent_key_not_allowed"],
      ["/v1/erasures", null, 401, "api_key_missing"],
      ["/v1/erasures?limit=0", undefined, 400, "invalid_limit"],
      ["/v1/erasures?cursor=nope", undefined, 400, "invalid_cursor"],
      ["/v1/erasures?user_id=", undefined, 400, "invalid_user_id"],
      ["/v1/erasures/era_00000000-0000-0000-0000-000000000000", undefined, 404, "erasure_not_found"],
      ["/v1/erasures/user:alice", undefined, 404, "erasure_not_found"],
    ] as const) {
      const res = await api("GET", path, key);
      expect(res.status, path).toBe(status);
      expect((await res.json<any>()).error.code).toBe(code);
    }
    expect((await api("POST", "/v1/erasures")).status).toBe(405);
  });
});
