/**
 * ConversationLedger (binding CONVERSATION_LEDGER): one object per conversation, `conversation:<id>`.
 * It holds what belongs to the conversation rather than to a user: its audio link (every recording
 * is committed here, through one function: audio.ts), its call failure, and the conversation itself
 * when no user owns it. A shell: each method checks its name, opens a transaction where it writes,
 * and calls one module. Conversations recorded before Core v3 are taken over from UserMemory on first
 * touch (legacy.ts).
 */
import type { Env } from "../../lib/env";
import type { ObjectKind } from "../../records/object-names";
import type { MemoryRecord } from "../../records/payload";
import type { CallFailureRecord } from "../../records/call-failure";
import { deleteAudioObjects, type AudioLink } from "../../storage/audio";
import { ElevenLabsApiError } from "../../elevenlabs/api";
import type { BackfillOutcome, RecordResult } from "../../memory/rpc";
import { isDuplicate, markSeen } from "../shared/dedupe";
import * as forwarding from "../shared/forwarding";
import * as outbox from "../shared/outbox";
import { OutboxObject } from "../shared/outbox-object";
import { commitTranscription } from "../shared/recording";
import { countRows } from "../shared/tables";
import { commitAudio, isErased, mayFetch } from "./audio";
import * as audioLinks from "./audio-links";
import { expectAudio, fetchAudio } from "./audio-backfill";
import { ledgerDeliveries } from "./deliveries";
import { adoptLegacy } from "./legacy";
import { LEDGER_TABLES } from "./schema";

const nowSeconds = () => Math.floor(Date.now() / 1000);

export class ConversationLedger extends OutboxObject<outbox.LedgerOutboxItem> {
  protected readonly serves: readonly ObjectKind[] = ["conversation"];
  private adopted: Promise<void> | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, LEDGER_TABLES, ledgerDeliveries((_c, _id, agentId) => this.backfill(agentId).then(() => undefined)));
  }

  /** From the name; an alarm may run without it (then from the `ledger` row, written with the tables). */
  private get conversationId(): string {
    if (this.name !== null) return this.name.slice("conversation:".length);
    const row = this.schema.exists() ? this.sql.exec<{ id: string | null }>("SELECT conversation_id AS id FROM ledger WHERE id = 1").toArray()[0] : undefined;
    if (!row?.id) throw new Error("a conversation ledger with neither a name nor tables");
    return row.id;
  }

  /** Creates the tables on a first write, with the ledger's own id. */
  private ensure(now: number): void {
    if (this.schema.exists()) return;
    this.schema.ensure(now);
    this.sql.exec("UPDATE ledger SET conversation_id = ? WHERE id = 1", this.conversationId);
  }

  /** Every method starts here: the name check, then (once per instance) the take-over of older state. */
  protected override async enter(method: string, force = false): Promise<void> {
    this.expect(method);
    this.adopted ??= adoptLegacy(this.env, this.ctx.storage, this.schema, this.tombstones, this.conversationId, force).then(async (at) => {
      if (at !== null) await outbox.scheduleAlarm(this.ctx.storage, at);
    });
    try {
      await this.adopted;
    } catch (err) {
      this.adopted = null;
      throw err;
    }
  }

  /** A legacy object's alarm asks this for the take-over (legacy.ts), whatever the window says: that object exists. */
  async takeOver(): Promise<void> {
    // An earlier (unforced) take-over may be under way: let it finish, so two never write at once;
    // if it asked nothing (the window was closed), ask again, forced.
    if (this.adopted !== null) await this.adopted.catch(() => {});
    if (!this.schema.exists()) this.adopted = null;
    await this.enter("takeOver", true);
  }

  protected retentionOwner(): string | null {
    return null;
  }

  protected override forgetSelf(): Promise<void> {
    return this.forgetConversation().then(() => undefined);
  }

  // ---- a conversation no one owns, a call failure ---------------------------------------------------

  async recordConversation(input: { record: MemoryRecord; raw: Uint8Array; receivedAt: number }): Promise<RecordResult> {
    await this.enter("recordConversation");
    const { record: r, raw, receivedAt } = input;
    // The ledger is the conversation's own: once erased, any event of it is dropped, whatever its start
    // time (a call that began in the very second of its erasure included).
    if (isErased(this.tombstones)) return { duplicate: false, dropped: "erased" };
    this.ensure(receivedAt);
    if (isDuplicate(this.sql, "post_call_transcription", r.conversationId)) return this.duplicate();
    this.ctx.storage.transactionSync(() => commitTranscription(this.sql, this.env, r, raw, receivedAt, null));
    await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    return { duplicate: false };
  }

  async recordCallFailure(input: { record: CallFailureRecord; receivedAt: number }): Promise<RecordResult> {
    await this.enter("recordCallFailure");
    const { record, receivedAt } = input;
    // An erased conversation is never recorded again, whatever event brings it back.
    if (isErased(this.tombstones)) return { duplicate: false, dropped: "erased" };
    this.ensure(receivedAt);
    if (isDuplicate(this.sql, "call_initiation_failure", record.conversationId)) return this.duplicate();
    this.ctx.storage.transactionSync(() => {
      markSeen(this.sql, "call_initiation_failure", record.conversationId, receivedAt);
      const seq = outbox.enqueue(this.sql, { kind: "call_failure", record, receivedAt }, record.conversationId, receivedAt);
      forwarding.queueForwards(this.sql, this.env, { type: "call.failed", conversationId: record.conversationId, occurredAt: receivedAt }, receivedAt, seq);
    });
    await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    return { duplicate: false };
  }

  private async duplicate(): Promise<RecordResult> {
    await this.repairAlarm();
    return { duplicate: true };
  }

  // ---- audio: every recording through commitAudio (audio.ts) -----------------------------------------

  /** A post_call_audio event whose MP3 is already in R2. An erased conversation's bytes are deleted before the answer. */
  async recordAudio(link: AudioLink): Promise<RecordResult> {
    await this.enter("recordAudio");
    const commit = await this.commit(link);
    return commit === "erased" ? { duplicate: false, dropped: "erased" } : { duplicate: commit === "duplicate" };
  }

  private async commit(link: AudioLink): Promise<"stored" | "duplicate" | "erased"> {
    if (!isErased(this.tombstones)) this.ensure(link.receivedAt);
    const done = this.ctx.storage.transactionSync(() => commitAudio(this.sql, this.env, this.tombstones, link));
    if (done.status === "erased") {
      await deleteAudioObjects(this.env.AUDIO, link.key);
      return "erased";
    }
    await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    return done.status;
  }

  /** The audio link this ledger holds, before or after D1 has it. Never writes. */
  async audioLink(): Promise<AudioLink | null> {
    await this.enter("audioLink");
    return this.schema.exists() ? audioLinks.readLink(this.sql, this.conversationId) : null;
  }

  /** Queues (or brings forward) the audio backfill, unless the audio is linked or the conversation erased. */
  async expectAudio(input: { agentId: string | null; dueAtMs: number }): Promise<void> {
    await this.enter("expectAudio");
    if (mayFetch(null, this.tombstones, this.conversationId) === "erased") return;
    this.ensure(nowSeconds());
    const at = expectAudio(this.sql, { conversationId: this.conversationId, ...input }, nowSeconds());
    if (at !== null) await outbox.scheduleAlarm(this.ctx.storage, at);
  }

  /** POST /v1/conversations/:id/audio/backfill: fetches the audio from ElevenLabs now, unless it is linked (or erased). */
  async backfillAudio(): Promise<BackfillOutcome> {
    await this.enter("backfillAudio");
    try {
      return await this.backfill(null);
    } catch (err) {
      if (!(err instanceof ElevenLabsApiError)) throw err;
      return { status: "failed", reason: err.message };
    }
  }

  /** Fetch, then commit through the one audio path. The scheduled item (outbox) and the route both come here. */
  private async backfill(agentId: string | null): Promise<BackfillOutcome> {
    const id = this.conversationId;
    const before = mayFetch(this.schema.exists() ? this.sql : null, this.tombstones, id);
    if (before === "erased") return { status: "dropped", reason: "erased" };
    if (before !== "fetch") return { status: "already_stored", bytes: before.bytes, sha256: before.sha256 };
    const fetched = await fetchAudio(this.env, id);
    if (fetched.status !== "fetched") {
      if (fetched.status === "unavailable") console.warn(`audio backfill of ${id}: ElevenLabs has no audio for it`);
      return fetched;
    }
    const link = { conversationId: id, agentId, key: fetched.key, bytes: fetched.bytes, sha256: fetched.sha256, receivedAt: nowSeconds() };
    const commit = await this.commit(link);
    if (commit === "erased") return { status: "dropped", reason: "erased" };
    if (commit === "duplicate") {
      const winner = audioLinks.readLink(this.sql, id);
      return { status: "already_stored", bytes: winner?.bytes ?? link.bytes, sha256: winner?.sha256 ?? link.sha256 };
    }
    return { status: "stored", bytes: link.bytes, sha256: link.sha256 };
  }

  /**
   * Erasure or retention of the conversation: deletes its audio objects, then wipes the ledger. An
   * erasure (`erased`) leaves a tombstone and the permanent erasure mark, so audio, a backfill or a
   * redelivery arriving later, even years later, is dropped; with `atSource` (ERASE_AT_ELEVENLABS) it
   * also queues the conversation's deletion at ElevenLabs (source-delete.ts), retried by the outbox.
   * A conversation erased before holds nothing (everything since was dropped) and its deletion is
   * already queued: a repeated erasure changes nothing, and asks ElevenLabs nothing again.
   */
  async forgetConversation(opts: { erased?: boolean; atSource?: boolean } = {}): Promise<number> {
    await this.enter("forgetConversation");
    if (opts.erased && isErased(this.tombstones)) return 0;
    let keys: string[] = [];
    if (this.schema.exists()) {
      keys = audioLinks.linkedKeys(this.sql, this.conversationId);
      await deleteAudioObjects(this.env.AUDIO, keys);
      await this.wipe(() => countRows(this.sql));
    }
    if (opts.erased) {
      let alarmAt = this.tombstones.write({ erasedAt: nowSeconds() }, nowSeconds());
      if (opts.atSource) {
        this.ensure(nowSeconds());
        outbox.enqueue(this.sql, { kind: "source_delete", conversationId: this.conversationId }, this.conversationId, nowSeconds());
        alarmAt = Date.now();
      }
      await this.ctx.storage.setAlarm(alarmAt);
    }
    return keys.length;
  }

  /** Whether this conversation was ever erased (a number's object asks before it records a call an erasure may have taken). */
  async wasErased(): Promise<boolean> {
    await this.enter("wasErased");
    return isErased(this.tombstones);
  }

  override async alarm(): Promise<void> {
    // The take-over first: an alarm can be the first thing an instance does.
    if (this.kind === "conversation") await this.enter("alarm").catch((err) => console.error("ledger take-over failed", err));
    return super.alarm();
  }
}
