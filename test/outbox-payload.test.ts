/**
 * An outbox item's payload (src/objects/shared/outbox.ts): a delivery is handed exactly the bytes that
 * were attached, whether none, one part read with the item's row, or several parts read when it is
 * delivered; a batch reads at most PREFETCH_BYTES of payload with its rows; and every way an item
 * leaves the outbox (delivered, dropped by kind, dropped as conversations) takes its payload with it,
 * in the same statement (the outbox_payload_goes trigger), in a new object and in an upgraded one.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { restartObject, userMemory } from "./objects";
import { LIMITS } from "../src/objects/shared/limits";
import { OUTBOX_TRIGGERS, PREFETCH_BYTES, attachPayload, drain, dropConversations, dropKind, enqueue, type OutboxItem } from "../src/objects/shared/outbox";
import { OUTBOX_TABLES } from "../src/objects/shared/tables";
import { MEMORY_SCHEMA_VERSION } from "../src/objects/user-memory/schema";
import { postWebhook, transcription, uid } from "./helpers";
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

/** Plants items with these payload sizes (null: no payload) in a fresh object's outbox; returns what was attached, by seq. */
function plant(storage: DurableObjectStorage, sizes: (number | null)[], kind?: (i: number) => OutboxItem): Map<number, Uint8Array> {
  storage.sql.exec(OUTBOX_TABLES + OUTBOX_TRIGGERS);
  const attached = new Map<number, Uint8Array>();
  sizes.forEach((size, i) => {
    const seq = enqueue(storage.sql, (kind ?? item)(i), `conv_${i}`, 1, { dueAtMs: 0 });
    const raw = size === null ? new Uint8Array(0) : bytes(size, i);
    if (size !== null) attachPayload(storage.sql, seq, raw);
    attached.set(seq, raw);
  });
  return attached;
}

const blobRows = (storage: DurableObjectStorage) => storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox_blobs").one().n;

describe("outbox payloads", () => {
  it("hands each delivery its exact bytes, reads at most PREFETCH_BYTES with a batch, and leaves no payload behind", async () => {
    const big = 900 * 1024;
    // A multi-part payload first (never read with the row), then one small, then six of 900 KB: the
    // running total passes PREFETCH_BYTES at the fifth of those, so the last two are read on delivery.
    const sizes = [null, 2.5 * LIMITS.blobPartBytes, 100, big, big, big, big, big, big];
    expect(100 + 4 * big).toBeLessThanOrEqual(PREFETCH_BYTES);
    expect(100 + 5 * big).toBeGreaterThan(PREFETCH_BYTES);
    await runInDurableObject(userMemory(env, uid("payload")), async (_m, state) => {
      const attached = plant(state.storage, sizes);
      expect(blobRows(state.storage)).toBe(3 + 1 + 6);
      const sql = state.storage.sql;
      const exec = sql.exec.bind(sql);
      let ownReads = 0;
      sql.exec = ((q: string, ...b: SqlStorageValue[]) => {
        if (/^SELECT data FROM outbox_blobs/.test(q)) ownReads++;
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
      expect(blobRows(state.storage)).toBe(0);
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
      expect(blobRows(state.storage)).toBe(3);
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
      plant(state.storage, [10, 20, 2 * LIMITS.blobPartBytes, 30], (i) => kinds[i]!(i));
      expect(blobRows(state.storage)).toBe(5);
      dropConversations(state.storage);
      expect(blobRows(state.storage)).toBe(3);
      expect(dropKind(state.storage, "phone_removed")).toBe(2);
      expect(blobRows(state.storage)).toBe(0);
    });
  });

  it("an object from before the trigger gets it on first use, and its payloads then go with their items", async () => {
    const userId = uid("payload-upgrade");
    await postWebhook(transcription({ userId }));
    await userMemory(env, userId).flush();
    await runInDurableObject(userMemory(env, userId), (_m, state) => {
      state.storage.sql.exec("DROP TRIGGER outbox_payload_goes; UPDATE profile SET schema_version = 5");
    });
    await restartObject(userMemory(env, userId));
    const stub = userMemory(env, userId);
    await postWebhook(transcription({ userId }));
    expect(await stub.flush()).toMatchObject({ failed: 0, pending: 0 });
    await runInDurableObject(stub, (_m, state) => {
      const trigger = state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name = 'outbox_payload_goes'").toArray();
      expect(trigger).toHaveLength(1);
      expect(state.storage.sql.exec<{ v: number }>("SELECT schema_version AS v FROM profile").one().v).toBe(MEMORY_SCHEMA_VERSION);
      expect(blobRows(state.storage)).toBe(0);
    });
  });
});
