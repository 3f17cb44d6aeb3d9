/**
 * Rotating ERASURE_LEDGER_KEY (README "Erasure and retention"): the first key hashes new entries, every
 * key (and, last, the key postcall keeps in D1) is matched, so an erasure recorded before a rotation
 * still keeps its conversations out and is still found by its user id. Dropping a key forgets what it
 * hashed: the docs say never to, and this shows why.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { transcriptionArrived, wasErased } from "../src/memory/arrival";
import type { Env } from "../src/lib/env";
import { ledgerHash } from "../src/records/erasure-hash";
import { parseEnvelope } from "../src/records/payload";
import { API_KEY, BASE, flush, nowSeconds, postWebhook, transcription, uid } from "./helpers";
import { injectBindings } from "./faults";
import { userMemory } from "./objects";
import { sendWith } from "./worker-with";

const keyed = (keys: string | undefined): Env => ({ ...env, ERASURE_LEDGER_KEY: keys }) as Env;

/** A stored call of a new user: its user id and conversation id. */
async function storedCall(label: string): Promise<{ userId: string; conversationId: string; event: Record<string, any> }> {
  const userId = uid(label);
  const event = transcription({ userId, startedAt: nowSeconds() - 120 });
  expect(await (await postWebhook(event)).json()).toMatchObject({ status: "stored" });
  const conversationId = event["data"].conversation_id as string;
  await flush(userId, conversationId);
  return { userId, conversationId, event };
}

/** The API through the Worker with ERASURE_LEDGER_KEY set to `keys` (undefined: unset). */
async function apiWith(keys: string | undefined, method: string, path: string): Promise<any> {
  const res = await sendWith({ ERASURE_LEDGER_KEY: keys } as Record<string, string>, new Request(`${BASE}${path}`, { method, headers: { Authorization: `Bearer ${API_KEY}` } }));
  expect(res.status, await res.clone().text()).toBe(200);
  return res.json();
}

/** The erasures `GET /v1/erasures?user_id=` finds for the user, under `keys`. */
async function erasuresOf(keys: string | undefined, userId: string): Promise<string[]> {
  const page = await apiWith(keys, "GET", `/v1/erasures?user_id=${encodeURIComponent(userId)}`);
  return page.erasures.map((e: { erasure_id: string }) => e.erasure_id);
}

/** An import of the erased conversation (the arrival path consults the ledger before anything else). */
async function importAgain(keys: string | undefined, event: object): Promise<string | undefined> {
  const raw = new TextEncoder().encode(JSON.stringify(event));
  return (await transcriptionArrived(keyed(keys), parseEnvelope(raw), raw, { origin: "import", receivedAt: nowSeconds() })).dropped;
}

describe("rotating ERASURE_LEDGER_KEY", () => {
  it("matches entries written under an older key (the generated one, then a configured one), hashes new ones with the first, and forgets a dropped key's", async () => {
    // Erased before any key was configured: hashed with the key postcall keeps in D1.
    const before = await storedCall("rot_before");
    const first = await apiWith(undefined, "DELETE", `/v1/users/${encodeURIComponent(before.userId)}`);
    expect(first.erasure_id).toMatch(/^era_/);

    // The operator sets a key: the old entry still counts, by conversation and by user id.
    expect(await wasErased(keyed("rot-key-1"), before.conversationId)).toBe(true);
    expect(await importAgain("rot-key-1", before.event)).toBe("erased");
    expect(await erasuresOf("rot-key-1", before.userId)).toEqual([first.erasure_id]);

    // An erasure under the configured key: its object hashes with it too.
    const after = await storedCall("rot_after");
    const restore = await injectBindings(userMemory(env, after.userId), { ERASURE_LEDGER_KEY: "rot-key-1" } as Partial<Env>);
    let second: { erasure_id: string };
    try {
      second = await apiWith("rot-key-1", "DELETE", `/v1/users/${encodeURIComponent(after.userId)}`);
    } finally {
      await restore();
    }
    const row = await env.DB.prepare("SELECT subject_hash FROM erasures WHERE erasure_id = ?").bind(second.erasure_id).first<{ subject_hash: string }>();
    expect(row?.subject_hash).toBe(await ledgerHash("rot-key-1", "user", after.userId));
    const entry = await env.DB.prepare("SELECT count(*) AS n FROM erased_conversations WHERE conversation_hash = ?")
      .bind(await ledgerHash("rot-key-1", "conversation", after.conversationId))
      .first<{ n: number }>();
    expect(entry?.n).toBe(1);

    // Rotated again, the old key kept after the new one: both erasures hold.
    for (const c of [before, after]) {
      expect(await wasErased(keyed("rot-key-2,rot-key-1"), c.conversationId)).toBe(true);
      expect(await importAgain("rot-key-2,rot-key-1", c.event)).toBe("erased");
    }
    expect(await erasuresOf("rot-key-2,rot-key-1", after.userId)).toEqual([second.erasure_id]);
    expect(await erasuresOf("rot-key-2,rot-key-1", before.userId)).toEqual([first.erasure_id]);

    // The key dropped: what it hashed is no longer recognised (the generated key's entry still is).
    expect(await wasErased(keyed("rot-key-2"), after.conversationId)).toBe(false);
    expect(await erasuresOf("rot-key-2", after.userId)).toEqual([]);
    expect(await wasErased(keyed("rot-key-2"), before.conversationId)).toBe(true);
  });
});
