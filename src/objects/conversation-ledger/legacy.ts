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
 * Each step is idempotent: the old object keeps its state until the ledger has committed it, and a
 * ledger that already holds tables never asks again, so a crash between the two only means asking
 * (and skipping) once more.
 */
import { legacyObject } from "../../memory/objects";
import type { LegacyConversation } from "../../memory/rpc";
import { conversationObjectName } from "../../records/object-names";
import type { Env } from "../../lib/env";
import { restoreItems } from "../shared/outbox";
import type { Schema } from "../shared/tables";
import { TOMBSTONE_SECONDS, type Tombstones } from "../shared/tombstone";

/** Writes what the old object held into this ledger's tables. */
function write(storage: DurableObjectStorage, schema: Schema, tombstones: Tombstones, state: LegacyConversation, now: number): void {
  const sql = storage.sql;
  if (state.rows > 0) schema.ensure(now);
  storage.transactionSync(() => {
    for (const r of state.seen) sql.exec("INSERT OR IGNORE INTO seen (kind, conversation_id, received_at) VALUES (?, ?, ?)", r.kind, r.conversation_id, r.received_at);
    for (const a of state.audio) {
      sql.exec(
        "INSERT OR IGNORE INTO audio (conversation_id, agent_id, r2_key, bytes, sha256, received_at) VALUES (?, ?, ?, ?, ?, ?)",
        a.conversation_id, a.agent_id, a.r2_key, a.bytes, a.sha256, a.received_at,
      );
    }
    restoreItems(sql, state.outbox, state.blobs);
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
export async function adoptLegacy(env: Env, storage: DurableObjectStorage, schema: Schema, tombstones: Tombstones, conversationId: string): Promise<number | null> {
  if (schema.exists()) return null;
  const old = legacyObject(env, conversationObjectName(conversationId));
  const state = await old.handOverConversation();
  if (state === null) return null;
  const now = Math.floor(Date.now() / 1000);
  write(storage, schema, tombstones, state, now);
  await old.forgetLegacy();
  const due = [state.tombstone ? state.tombstone.expiresAt * 1000 : null, state.outbox.length > 0 ? Date.now() : null].filter((x): x is number => x !== null);
  return due.length > 0 ? Math.min(...due) : null;
}
