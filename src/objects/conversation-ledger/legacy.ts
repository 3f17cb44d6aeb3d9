/**
 * Conversations recorded before Core v3 live in UserMemory objects named `conversation:<id>`: an
 * audio link, a call failure, an unattributed conversation, items still in their outbox, a
 * tombstone. A ledger takes that state over the first time it is touched (copy on first touch):
 * it asks the old object for everything it holds, writes it into its own tables in one
 * transaction, then tells the old object to forget it. An old object with something still due also
 * hands over from its own alarm (UserMemory's legacy alarm touches the ledger), so no pending item
 * waits for a webhook that may never come. Tested on state written by the old class
 * (test/ledger-migration.test.ts).
 *
 * Only for a while, and only where there can be anything: a deployment created on Core v3 has no old
 * objects, and an upgraded one records when it was upgraded (D1 `upgrades`, migration 0010); ledgers
 * ask for LEGACY_WINDOW_SECONDS after that (a tombstone's lifetime, and then some), read once per
 * isolate, so a new conversation's ledger costs no extra request. An old object with an alarm (a
 * pending item, a tombstone, retention) hands over from its alarm whenever it fires (`force`).
 *
 * Each step is idempotent: the old object keeps its state until the ledger has committed it (with
 * `ledger.legacy = 'copied'` in the same transaction), and the ledger tells it to forget until that
 * mark is cleared, so a crash between the two only means telling it once more: the old copy (which
 * may hold a raw payload) never outlives the take-over.
 */
import { legacyObject, type LegacyStub } from "../../memory/objects";
import type { LegacyConversation } from "../../memory/rpc";
import { conversationObjectName } from "../../records/object-names";
import type { Env } from "../../lib/env";
import { restoreItems } from "../shared/outbox";
import type { Schema } from "../shared/tables";
import { upgradedAt } from "../../storage/upgrades";
import { TOMBSTONE_SECONDS, type Tombstones } from "../shared/tombstone";

/** Writes what the old object held into this ledger's tables. */
function write(storage: DurableObjectStorage, schema: Schema, tombstones: Tombstones, state: LegacyConversation, conversationId: string, now: number): void {
  const sql = storage.sql;
  if (state.rows > 0) {
    schema.ensure(now);
    sql.exec("UPDATE ledger SET conversation_id = ? WHERE id = 1", conversationId);
  }
  storage.transactionSync(() => {
    for (const r of state.seen) sql.exec("INSERT OR IGNORE INTO seen (kind, conversation_id, received_at) VALUES (?, ?, ?)", r.kind, r.conversation_id, r.received_at);
    for (const a of state.audio) {
      sql.exec(
        "INSERT OR IGNORE INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, received_at) VALUES (?, ?, ?, ?, ?, ?)",
        a.conversation_id, a.agent_id, a.r2_key, a.bytes, a.sha256, a.received_at,
      );
    }
    restoreItems(sql, state.outbox, state.blobs);
    if (state.rows > 0) sql.exec("UPDATE ledger SET legacy = 'copied' WHERE id = 1");
    if (state.retentionAnchor !== null) sql.exec("UPDATE upkeep SET retention_anchor = ? WHERE id = 1", state.retentionAnchor);
    if (state.tombstone !== null) {
      const { erasedAt, unlinkedAt } = state.tombstone;
      // `write` sets the expiry TOMBSTONE_SECONDS after the `now` it is given: the old expiry is kept.
      tombstones.write({ ...(erasedAt !== null ? { erasedAt } : {}), ...(unlinkedAt !== null ? { unlinkedAt } : {}) }, state.tombstone.expiresAt - TOMBSTONE_SECONDS);
    }
  });
}

/**
 * Takes over the old object's state, once. Returns when this ledger's alarm must fire (ms) for
 * what it took over, or null.
 */
export async function adoptLegacy(
  env: Env,
  storage: DurableObjectStorage,
  schema: Schema,
  tombstones: Tombstones,
  conversationId: string,
  force = false,
): Promise<number | null> {
  if (!force && !(await legacyWindowOpen(env))) return null;
  const old = legacyObject(env, conversationObjectName(conversationId));
  if (schema.exists()) {
    // Copied before, but the old object may not have heard that it can forget.
    if (storage.sql.exec("SELECT 1 FROM ledger WHERE id = 1 AND legacy = 'copied'").toArray().length > 0) await forget(storage, old);
    return null;
  }
  const state = await old.handOverConversation();
  if (state === null) return null;
  const now = Math.floor(Date.now() / 1000);
  write(storage, schema, tombstones, state, conversationId, now);
  await forget(storage, old);
  const due = [state.tombstone ? state.tombstone.expiresAt * 1000 : null, state.outbox.length > 0 ? Date.now() : null].filter((x): x is number => x !== null);
  return due.length > 0 ? Math.min(...due) : null;
}

async function forget(storage: DurableObjectStorage, old: LegacyStub): Promise<void> {
  await old.forgetLegacy();
  if (storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'ledger'").toArray().length > 0) storage.sql.exec("UPDATE ledger SET legacy = NULL WHERE id = 1");
}

/** How long after the upgrade a ledger asks the old object of its name (a tombstone lasts 30 days). */
export const LEGACY_WINDOW_SECONDS = TOMBSTONE_SECONDS + 86_400;

let window: { end: number | null; readAt: number } | null = null;
/** Re-read at most this often (an isolate can live for days; the window closes on its own). */
const WINDOW_REREAD_MS = 3_600_000;

/** Whether old objects may still hold something: upgraded less than LEGACY_WINDOW_SECONDS ago. */
async function legacyWindowOpen(env: Env): Promise<boolean> {
  const now = Date.now();
  if (window === null || now - window.readAt > WINDOW_REREAD_MS) {
    try {
      const at = await upgradedAt(env.DB, "core_v3");
      window = { end: at === null ? null : (at + LEGACY_WINDOW_SECONDS) * 1000, readAt: now };
    } catch (err) {
      // Unknown: ask the old object (one request) rather than miss a tombstone.
      console.warn(`could not read the Core v3 upgrade window: ${err instanceof Error ? err.message : String(err)}`);
      return true;
    }
  }
  return window.end !== null && now < window.end;
}

/** Tests: forget the window read by this isolate. */
export function forgetLegacyWindow(): void {
  window = null;
}
