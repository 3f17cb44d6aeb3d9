/**
 * An outbox item's payload (src/objects/shared/outbox.ts): a delivery is handed exactly the bytes that
 * were queued, whether none, one part in the item's own row (or, queued before memory schema 7, in
 * `outbox_blobs`) read with the row, or several parts read when it is delivered; a batch reads at most
 * PREFETCH_BYTES of payload with its rows; and every way an item leaves the outbox (delivered, dropped
 * by kind, dropped as conversations) takes its payload with it, in the same statement (the
 * outbox_payload_goes trigger), in a new object and in an upgraded one. A conversation item leaving
 * moves the retention anchor back to its call's start, in that statement too (outbox_conversation_goes).
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { restartObject, userMemory } from "./objects";
import { LIMITS } from "../src/objects/shared/limits";
import { OUTBOX_TRIGGERS, PREFETCH_BYTES, attachPayload, drain, dropConversations, dropKind, enqueue, remove, type OutboxItem } from "../src/objects/shared/outbox";
import { OUTBOX_TABLES, retentionAnchor, setRetentionAnchor } from "../src/objects/shared/tables";
import { MEMORY_SCHEMA_VERSION } from "../src/objects/user-memory/schema";
import { postWebhook, transcription, uid } from "./helpers";
import { deliverParked, pendingConversation } from "./api-helpers";
import { expectLogs, outboxFailure } from "./logs";

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

/** Byte-equal (a plain loop: a deep equality of megabytes is slow). */
function same(a: Uint8Array | undefined | null, b: Uint8Array | undefined): boolean {
  if (!a || !b || a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

const item = (i: number): OutboxItem => ({ kind: "phone_removed", phoneNumber: `+1415555${String(i).padStart(4, "0")}`, userId: "u", at: i });

/**
 * Plants items with these payload sizes (null: no payload) in a fresh object's outbox; returns what was
 * queued, by seq. The items at `legacy` have theirs in `outbox_blobs` although one part, as an item
 * queued before memory schema 7 has.
 */
function plant(storage: DurableObjectStorage, sizes: (number | null)[], kind?: (i: number) => OutboxItem, legacy: number[] = []): Map<number, Uint8Array> {
  storage.sql.exec(OUTBOX_TABLES + OUTBOX_TRIGGERS);
  const attached = new Map<number, Uint8Array>();
  sizes.forEach((size, i) => {
    const raw = size === null ? new Uint8Array(0) : bytes(size, i);
    const old = legacy.includes(i);
    const seq = enqueue(storage.sql, (kind ?? item)(i), `conv_${i}`, 1, { dueAtMs: 0, ...(size === null || old ? {} : { payload: raw }) });
    if (size !== null && old) attachPayload(storage.sql, seq, raw);
    attached.set(seq, raw);
  });
  return attached;
}

const blobRows = (storage: DurableObjectStorage) => storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox_blobs").one().n;
const inlineRows = (storage: DurableObjectStorage) => storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox WHERE payload IS NOT NULL").one().n;

describe("outbox payloads", () => {
  it("hands each delivery its exact bytes, reads at most PREFETCH_BYTES with a batch, and leaves no payload behind", async () => {
    const big = 900 * 1024;
    // A multi-part payload first (never read with the row), then one small, then six of 900 KB (the
    // second of them in outbox_blobs, as queued before schema 7): the running total passes
    // PREFETCH_BYTES at the fifth of those, so the last two are read on delivery.
    const sizes = [null, 2.5 * LIMITS.blobPartBytes, 100, big, big, big, big, big, big];
    expect(100 + 4 * big).toBeLessThanOrEqual(PREFETCH_BYTES);
    expect(100 + 5 * big).toBeGreaterThan(PREFETCH_BYTES);
    await runInDurableObject(userMemory(env, uid("payload")), async (_m, state) => {
      const attached = plant(state.storage, sizes, undefined, [4]);
      expect({ blobs: blobRows(state.storage), inline: inlineRows(state.storage) }).toEqual({ blobs: 3 + 1, inline: 1 + 5 });
      const sql = state.storage.sql;
      const exec = sql.exec.bind(sql);
      let ownReads = 0;
      sql.exec = ((q: string, ...b: SqlStorageValue[]) => {
        if (/^SELECT -1 AS part, payload AS data FROM outbox/.test(q)) ownReads++;
        return exec(q, ...b);
      }) as typeof sql.exec;
      const seen = new Map<number, Uint8Array>();
      try {
        const { report } = await drain(state.storage, async (row) => {
          seen.set(row.seq, row.payload());
        });
        expect(report).toEqual({ delivered: sizes.length, failed: 0, pending: 0 });
      } finally {
        sql.exec = exec;
      }
      expect([...seen.keys()]).toEqual([...attached.keys()]);
      for (const [seq, raw] of attached) expect(same(seen.get(seq), raw), `item ${seq}: ${raw.byteLength} bytes`).toBe(true);
      // Read on their own: the multi-part payload and the two past the batch's byte bound.
      expect(ownReads).toBe(3);
      expect({ blobs: blobRows(state.storage), inline: inlineRows(state.storage) }).toEqual({ blobs: 0, inline: 0 });
    });
  });

  it("a failed delivery keeps its payload for the next attempt, whole", async () => {
    expectLogs(outboxFailure("destination down"));
    await runInDurableObject(userMemory(env, uid("payload-retry")), async (_m, state) => {
      const attached = plant(state.storage, [2 * LIMITS.blobPartBytes + 5, 300]);
      let first = true;
      const { report } = await drain(state.storage, async (row) => {
        row.payload();
        if (first) {
          first = false;
          throw new Error("destination down");
        }
      });
      expect(report).toMatchObject({ delivered: 1, failed: 1, pending: 1 });
      const seqs = [...attached.keys()];
      expect({ blobs: blobRows(state.storage), inline: inlineRows(state.storage) }).toEqual({ blobs: 3, inline: 0 });
      // Due now, delivered with the same bytes.
      state.storage.sql.exec("UPDATE outbox SET next_attempt_at = 0");
      let again: Uint8Array | null = null;
      await drain(state.storage, async (row) => {
        again = row.payload();
      });
      expect(same(again, attached.get(seqs[0]!))).toBe(true);
      expect(blobRows(state.storage)).toBe(0);
    });
  });

  it("drops an item's payload with it, by kind and as conversations, and keeps every other item's", async () => {
    await runInDurableObject(userMemory(env, uid("payload-drop")), async (_m, state) => {
      const conversation = (i: number) => ({ kind: "conversation", user: { userId: "u" }, receivedAt: i }) as unknown as OutboxItem;
      const kinds = [item, conversation, item, conversation];
      // The first conversation's payload in outbox_blobs, as queued before schema 7; the other in its row.
      plant(state.storage, [10, 20, 2 * LIMITS.blobPartBytes, 30], (i) => kinds[i]!(i), [1]);
      const rows = () => ({ blobs: blobRows(state.storage), inline: inlineRows(state.storage), items: state.storage.sql.exec("SELECT seq FROM outbox").toArray().length });
      expect(rows()).toEqual({ blobs: 1 + 2, inline: 2, items: 4 });
      dropConversations(state.storage);
      expect(rows()).toEqual({ blobs: 2, inline: 1, items: 2 });
      expect(dropKind(state.storage, "phone_removed")).toBe(2);
      expect(rows()).toEqual({ blobs: 0, inline: 0, items: 0 });
    });
  });

  it("an object from before schema 7 gets the payload column and both triggers on first use, and its payloads then go with their items", async () => {
    const userId = uid("payload-upgrade");
    await postWebhook(transcription({ userId }));
    await userMemory(env, userId).flush();
    await runInDurableObject(userMemory(env, userId), (_m, state) => {
      state.storage.sql.exec("DROP TRIGGER outbox_payload_goes; DROP TRIGGER outbox_conversation_goes; ALTER TABLE outbox DROP COLUMN payload; UPDATE profile SET schema_version = 5");
    });
    await restartObject(userMemory(env, userId));
    const stub = userMemory(env, userId);
    await postWebhook(transcription({ userId }));
    await runInDurableObject(stub, (_m, state) => expect(inlineRows(state.storage)).toBe(1));
    expect(await stub.flush()).toMatchObject({ failed: 0, pending: 0 });
    await runInDurableObject(stub, (_m, state) => {
      const triggers = state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'outbox%' ORDER BY name").toArray();
      expect(triggers.map((t) => t.name)).toEqual(["outbox_conversation_goes", "outbox_payload_goes"]);
      expect(state.storage.sql.exec<{ v: number }>("SELECT schema_version AS v FROM profile").one().v).toBe(MEMORY_SCHEMA_VERSION);
      expect({ blobs: blobRows(state.storage), inline: inlineRows(state.storage) }).toEqual({ blobs: 0, inline: 0 });
    });
  });
});

describe("the retention anchor as a conversation item leaves", () => {
  const conversation = (startedAt?: number) => (): OutboxItem => ({ kind: "conversation", user: { userId: "u", source: "dynamic_variable" }, receivedAt: 1, ...(startedAt === undefined ? {} : { startedAt }) }) as unknown as OutboxItem;

  it("moves back to the call's start, never forward, whether delivered or dropped; an item without its start, or not JSON, leaves it", async () => {
    await runInDurableObject(userMemory(env, uid("anchor")), async (_m, state) => {
      const { sql } = state.storage;
      const [a, b, c, d, e] = [...plant(state.storage, [10, 10, 10, 10, 10], (i) => [conversation(5_000)(), conversation(9_000)(), conversation()(), item(i), conversation(100)()][i]!).keys()];
      setRetentionAnchor(sql, 7_000);
      remove(state.storage, a!);
      expect(retentionAnchor(sql)).toBe(5_000);
      remove(state.storage, b!);
      expect(retentionAnchor(sql)).toBe(5_000);
      remove(state.storage, c!);
      remove(state.storage, d!);
      expect(retentionAnchor(sql)).toBe(5_000);
      sql.exec("UPDATE outbox SET body = 'not json' WHERE seq = ?", e!);
      remove(state.storage, e!);
      expect(retentionAnchor(sql)).toBe(5_000);
      plant(state.storage, [10], () => conversation(100)());
      setRetentionAnchor(sql, null);
      dropConversations(state.storage);
      expect(retentionAnchor(sql)).toBe(100);
    });
  });

  it("a conversation's delivery anchors it, whether its item carries its start or was queued before items did", async () => {
    for (const queuedBefore of [false, true]) {
      const userId = uid("anchor-delivery");
      // Parked (not due, no alarm), so nothing delivers it before the item is changed.
      const { startedAt } = await pendingConversation(userId, undefined, { startedAt: 1_750_000_000 + (queuedBefore ? 1 : 0) });
      const stub = userMemory(env, userId);
      await runInDurableObject(stub, (_m, state) => {
        state.storage.sql.exec("UPDATE upkeep SET retention_anchor = NULL");
        if (queuedBefore) state.storage.sql.exec("UPDATE outbox SET body = json_remove(body, '$.startedAt') WHERE kind = 'conversation'");
        const body = state.storage.sql.exec<{ s: number | null }>("SELECT body ->> '$.startedAt' AS s FROM outbox WHERE kind = 'conversation'").one();
        expect(body.s).toBe(queuedBefore ? null : startedAt);
      });
      expect(await deliverParked(userId)).toBe(0);
      expect((await stub.describe())!.retentionAnchor, queuedBefore ? "queued before" : "with its start").toBe(startedAt);
    }
  });
});
