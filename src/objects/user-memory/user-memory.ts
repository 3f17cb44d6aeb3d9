/**
 * UserMemory: the Durable Object behind every user's memory (binding USER_MEMORY). One SQLite
 * database per object, one object per user, phone number or unattributed conversation
 * (src/memory/roles.ts names the three kinds and what each answers).
 *
 * This class is a shell: each RPC method checks that it is being asked of the right kind of object,
 * opens a transaction where it writes, and calls the module that does the job: profile (memory),
 * dedupe, outbox and deliveries, phone-links, retention, erasure. docs/storage.md lists the tables.
 *
 * One alarm serves the outbox and retention: it delivers what is due, then removes conversations
 * that have expired, then re-arms itself for whichever comes first.
 */
import { DurableObject } from "cloudflare:workers";
import { config } from "../../lib/config";
import type { Env } from "../../lib/env";
import type { CallFailureRecord, MemoryRecord } from "../../records/payload";
import { deleteAudioObjects, type AudioLink } from "../../storage/audio";
import { ElevenLabsApiError } from "../../elevenlabs/api";
import * as audioLinks from "../conversation-ledger/audio-links";
import { BacklogReporter } from "../shared/backlog-report";
import { isDuplicate, markSeen } from "../shared/dedupe";
import { deliver } from "../shared/deliveries";
import { commitConversation } from "../shared/recording";
import * as backfill from "../conversation-ledger/audio-backfill";
import * as imports from "../history-import/imports";
import { eraseStep, recordDuringErasure } from "./erasure";
import * as forwarding from "../shared/forwarding";
import { kindOfName } from "../../memory/objects";
import { recall, type RecallHit } from "./recall";
import { backfillPending, backfillProgress, backfillRun } from "./recall-backfill";
import * as outbox from "../shared/outbox";
import * as phones from "./phone-links";
import * as profile from "./profile";
import * as recallIndex from "./recall-index";
import { applyRetention, retentionFromAlarm } from "../shared/retention";
import type * as roles from "../../memory/rpc";
import { countRows, erasingSince, retentionAnchor, Schema } from "./schema";
import * as stats from "../health-stats/stats";
import { EMPTY_SNAPSHOT, type MemorySnapshot } from "../../memory/variables";
import { Tombstones } from "../shared/tombstone";

/** When the alarm handler itself fails (not one item), try the whole run again after this long. */
const ALARM_RETRY_MS = 60 * 1000;

const ALL: roles.ObjectKind[] = ["user", "phone", "conversation"];
const USERS: roles.ObjectKind[] = ["user", "phone"];
const PHONE: roles.ObjectKind[] = ["phone"];
const CONVERSATION: roles.ObjectKind[] = ["conversation"];
const STATS: roles.ObjectKind[] = ["stats"];
const IMPORT: roles.ObjectKind[] = ["import"];

export class UserMemory extends DurableObject<Env> implements roles.PhoneObject, roles.ConversationObject, roles.StatsObject, roles.ImportObject {
  private readonly sql: SqlStorage;
  private readonly schema: Schema;
  private readonly tombstones: Tombstones;
  private flushing: Promise<roles.FlushReport> | null = null;
  /**
   * What a read serves (the snapshot and the number's owner), kept in memory between writes. Safe
   * because this instance is the only writer of its storage: every method that changes what it
   * holds calls `changed()` once the change is committed, before it awaits anything. Unlike the
   * per-isolate CONTEXT_CACHE_SECONDS cache, it can never be stale. It saves a context read three SQL
   * statements (bench:profile).
   */
  private served: { snapshot: MemorySnapshot; linkedTo: string | null } | null = null;
  /** This object's outbox as the health page sees it (src/memory/backlog-report.ts). */
  private readonly backlog: BacklogReporter;
  private backfillArmed = false;
  private erasing: boolean | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.schema = new Schema(ctx.storage);
    this.tombstones = new Tombstones(ctx.storage.sql);
    this.backlog = new BacklogReporter(env, ctx.storage, ctx.id.name ?? ctx.id.toString());
  }

  /** Refuses a method asked of the wrong kind of object (stubs are typed by kind; this is the run-time check). */
  private expect(kinds: roles.ObjectKind[], method: string): void {
    const name = this.ctx.id.name;
    const kind = name === undefined ? null : kindOfName(name);
    if (kind !== null && !kinds.includes(kind)) throw new Error(`${method} is not a method of a ${kind} object`);
  }

  // ---- recording events ----------------------------------------------------------------------------

  /** Commits a transcription: delivery record, memory and outbox item in one transaction. */
  async recordConversation(input: { record: MemoryRecord; raw: Uint8Array; receivedAt: number }): Promise<roles.RecordResult> {
    this.expect(ALL, "recordConversation");
    const { record: r, raw, receivedAt } = input;
    // Erasure that lasts: a conversation that started before this object was erased (or before an
    // erasure under way began) is acknowledged and dropped (src/memory/tombstone.ts).
    if (this.tombstones.erases(r.startedAt)) return { duplicate: false, dropped: "erased" };
    const during = this.schema.exists() ? recordDuringErasure(this.ctx.storage, input) : null;
    if (during !== null) return during;
    if (r.userIdSource === "phone_number" && this.schema.exists()) {
      // A number's object. A redelivery of a conversation recorded here before the number was linked
      // stays a duplicate here rather than being counted again for the app user.
      if (isDuplicate(this.sql, "post_call_transcription", r.conversationId)) return { duplicate: true };
      const owner = phones.ownerRow(this.sql)?.user_id ?? null;
      if (owner !== null) return { duplicate: false, linkedTo: owner };
    }
    this.schema.ensure(receivedAt);
    if (isDuplicate(this.sql, "post_call_transcription", r.conversationId)) return this.duplicate();
    this.ctx.storage.transactionSync(() => commitConversation(this.sql, this.env, r, raw, receivedAt));
    this.changed();
    await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    return { duplicate: false };
  }

  async recordCallFailure(input: { record: CallFailureRecord; receivedAt: number }): Promise<roles.RecordResult> {
    this.expect(CONVERSATION, "recordCallFailure");
    const { record, receivedAt } = input;
    this.schema.ensure(receivedAt);
    if (isDuplicate(this.sql, "call_initiation_failure", record.conversationId)) return this.duplicate();
    const forwards = forwarding.subscribers(this.env, "call.failed");
    this.ctx.storage.transactionSync(() => {
      markSeen(this.sql, "call_initiation_failure", record.conversationId, receivedAt);
      outbox.enqueue(this.sql, { kind: "call_failure", record, receivedAt }, record.conversationId, receivedAt);
      forwarding.queueForwards(this.sql, forwards, { type: "call.failed", conversationId: record.conversationId, occurredAt: receivedAt }, receivedAt);
    });
    await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    return { duplicate: false };
  }

  /**
   * A redelivery changes nothing, but it is a chance to repair a missing alarm: if the first delivery
   * committed and then failed to set its alarm (so the sender saw a 5xx and retried), the outbox
   * would otherwise wait for the next event to be drained.
   */
  private async duplicate(): Promise<roles.RecordResult> {
    const next = outbox.nextDueAt(this.sql);
    if (next !== null) await outbox.scheduleAlarm(this.ctx.storage, next);
    return { duplicate: true };
  }

  /**
   * Commits a post_call_audio event whose MP3 is already in R2: the durable link and an outbox item
   * that writes it to D1. A redelivery keeps the first audio and queues the new object's deletion,
   * so no object is ever left unlinked.
   */
  async recordAudio(link: AudioLink): Promise<roles.RecordResult> {
    this.expect(CONVERSATION, "recordAudio");
    if (this.tombstones.get()?.erasedAt != null) {
      // Audio for an erased conversation: acknowledged, and its bytes deleted before the answer.
      await deleteAudioObjects(this.env.AUDIO, link.key);
      return { duplicate: false, dropped: "erased" };
    }
    this.schema.ensure(link.receivedAt);
    const duplicate = isDuplicate(this.sql, "post_call_audio", link.conversationId);
    const forwards = forwarding.subscribers(this.env, "audio.stored");
    this.ctx.storage.transactionSync(() => {
      if (duplicate) {
        outbox.enqueue(this.sql, { kind: "audio_discard", key: link.key }, link.conversationId, link.receivedAt);
        return;
      }
      markSeen(this.sql, "post_call_audio", link.conversationId, link.receivedAt);
      audioLinks.insertLink(this.sql, link);
      outbox.enqueue(this.sql, { kind: "audio", link }, link.conversationId, link.receivedAt);
      forwarding.queueForwards(this.sql, forwards, { type: "audio.stored", conversationId: link.conversationId, occurredAt: link.receivedAt }, link.receivedAt);
    });
    await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    return { duplicate };
  }

  /** The audio link this object holds, before or after D1 has it. Never writes. */
  async audioLink(conversationId: string): Promise<AudioLink | null> {
    this.expect(CONVERSATION, "audioLink");
    return this.schema.exists() ? audioLinks.readLink(this.sql, conversationId) : null;
  }

  /**
   * Erasure or retention of this object's conversation: deletes its audio objects, then wipes the
   * object. An erasure (`erased`) leaves a tombstone, so audio or a redelivery arriving later is dropped.
   */
  async forgetConversation(conversationId: string, opts: { erased?: boolean } = {}): Promise<number> {
    this.expect(CONVERSATION, "forgetConversation");
    const now = Math.floor(Date.now() / 1000);
    let keys: string[] = [];
    if (this.schema.exists()) {
      keys = audioLinks.linkedKeys(this.sql, conversationId);
      await deleteAudioObjects(this.env.AUDIO, keys);
      await this.wipe();
    }
    if (opts.erased) await this.ctx.storage.setAlarm(this.tombstones.write({ erasedAt: now }, now));
    return keys.length;
  }

  // ---- audio backfill (src/memory/audio-backfill.ts) -------------------------------------------------

  async expectAudio(input: { conversationId: string; agentId: string | null; dueAtMs: number }): Promise<void> {
    this.expect(CONVERSATION, "expectAudio");
    const now = Math.floor(Date.now() / 1000);
    this.schema.ensure(now);
    const at = backfill.expectAudio(this.sql, input, now);
    if (at !== null) await outbox.scheduleAlarm(this.ctx.storage, at);
  }

  async backfillAudio(conversationId: string): Promise<roles.BackfillOutcome> {
    this.expect(CONVERSATION, "backfillAudio");
    this.schema.ensure(Math.floor(Date.now() / 1000));
    let outcome: roles.BackfillOutcome;
    try {
      outcome = await backfill.backfillAudio(this.env, this.sql, conversationId, null);
    } catch (err) {
      if (!(err instanceof ElevenLabsApiError)) throw err;
      return { status: "failed", reason: err.message };
    }
    if (outcome.status === "stored") await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    return outcome;
  }

  // ---- history import (src/memory/imports.ts) ---------------------------------------------------------

  async startImport(spec: roles.ImportSpec): Promise<roles.ImportStatus> {
    this.expect(IMPORT, "startImport");
    return imports.startImport(this.ctx.storage, this.env, spec);
  }

  async importStatus(): Promise<roles.ImportStatus | null> {
    this.expect(IMPORT, "importStatus");
    return imports.importStatus(this.ctx.storage);
  }

  private async importAlarm(): Promise<void> {
    try {
      const next = await imports.importStep(this.ctx.storage, this.env);
      if (next !== null) await this.ctx.storage.setAlarm(next);
    } catch (err) {
      console.error("import step failed; retrying in 60 s", err instanceof Error ? (err.stack ?? err.message) : String(err));
      await this.ctx.storage.setAlarm(Date.now() + ALARM_RETRY_MS);
    }
  }

  // ---- memory --------------------------------------------------------------------------------------

  async markAudio(conversationId: string): Promise<void> {
    this.expect(USERS, "markAudio");
    if (this.schema.exists()) profile.markAudio(this.sql, conversationId);
  }

  /** What the next conversation needs. Never writes. */
  async snapshot(): Promise<MemorySnapshot> {
    this.expect(USERS, "snapshot");
    const served = this.read()?.snapshot ?? EMPTY_SNAPSHOT;
    this.armBackfill();
    return served;
  }

  /**
   * POST /tools/recall: the best matches for `query` in this memory's recall index (src/memory/recall.ts).
   * Never writes. Nothing once an erasure has begun; nothing past retention.
   */
  async recall(input: { query: string; limit: number; excludeConversationId: string | null; now: number }): Promise<RecallHit[]> {
    this.expect(USERS, "recall");
    if (!this.schema.exists() || this.isErasing()) return [];
    this.armBackfill();
    const days = config(this.env).retentionDays;
    return recall(this.sql, input.query, { ...input, cutoff: days === null ? null : input.now - days * 86_400 });
  }

  /** MEMORY_SCOPE="agent": records that this user has a memory with `agentId` (erasure finds it here). */
  async registerScope(agentId: string, at: number): Promise<void> {
    this.expect(USERS, "registerScope");
    this.schema.ensure(at);
    this.sql.exec("INSERT OR IGNORE INTO memory_scopes (agent_id, registered_at) VALUES (?, ?)", agentId, at);
  }

  /**
   * An object upgraded to the recall index holds conversations the index has not seen: arm the alarm
   * once per instance so the backfill runs (src/memory/recall-backfill.ts). Not awaited by a read.
   */
  private armBackfill(): void {
    if (this.backfillArmed) return;
    this.backfillArmed = true;
    if (this.schema.exists() && backfillPending(this.sql)) {
      this.ctx.waitUntil(outbox.scheduleAlarm(this.ctx.storage, Date.now()));
    }
  }

  /** For the initiation webhook, in one round trip: the app user the number is linked to, or the number's own snapshot. */
  async resolveCaller(): Promise<{ linkedTo: string | null; snapshot: MemorySnapshot }> {
    this.expect(PHONE, "resolveCaller");
    const served = this.read();
    if (served === null) return { linkedTo: null, snapshot: EMPTY_SNAPSHOT };
    return served.linkedTo !== null ? { linkedTo: served.linkedTo, snapshot: EMPTY_SNAPSHOT } : { linkedTo: null, snapshot: served.snapshot };
  }

  /**
   * The snapshot and the number's owner, from memory when nothing changed since they were read; null
   * with no storage. Nothing is served once an erasure has begun: the user asked to be forgotten.
   */
  private read(): { snapshot: MemorySnapshot; linkedTo: string | null } | null {
    if (!this.schema.exists()) return null;
    this.served ??= erasingSince(this.sql) !== null
      ? { snapshot: EMPTY_SNAPSHOT, linkedTo: null }
      : { snapshot: profile.readSnapshot(this.sql), linkedTo: phones.ownerRow(this.sql)?.user_id ?? null };
    return this.served;
  }

  private changed(): void {
    this.served = null;
    this.erasing = null;
  }

  /** Whether an erasure has begun, kept between writes like `served` (recall asks it on every call). */
  private isErasing(): boolean {
    this.erasing ??= erasingSince(this.sql) !== null;
    return this.erasing;
  }

  /** Everything this memory holds, or null when it holds nothing. Never writes. */
  async describe(): Promise<roles.MemoryView | null> {
    this.expect(USERS, "describe");
    if (!this.schema.exists()) return null;
    this.armBackfill();
    return {
      ...profile.readMemory(this.sql),
      phones: phones.listPhones(this.sql),
      owner: phones.ownerRow(this.sql),
      pendingDeliveries: outbox.pendingCount(this.sql),
      erasingSince: erasingSince(this.sql),
      retentionAnchor: retentionAnchor(this.sql),
      recallIndex: { ...recallIndex.indexStats(this.sql), backfillIndexed: backfillProgress(this.sql) },
      scopes: this.sql.exec<{ agent_id: string }>("SELECT agent_id FROM memory_scopes ORDER BY agent_id LIMIT 1000").toArray().map((r) => r.agent_id),
    };
  }

  // ---- phone links ---------------------------------------------------------------------------------

  async setOwner(input: { phoneNumber: string; userId: string; at: number; via: roles.LinkVia; conversationId: string | null }): Promise<roles.OwnerResult> {
    this.expect(PHONE, "setOwner");
    const now = Math.floor(Date.now() / 1000);
    // A link no newer than an unlink or erasure this object survived (its tombstone) is not applied.
    const floor = this.tombstones.linkFloor();
    if (floor !== null && input.at <= floor) {
      return { owner: this.schema.exists() ? (phones.ownerRow(this.sql)?.user_id ?? null) : null, applied: false };
    }
    this.schema.ensure(now);
    const res = this.ctx.storage.transactionSync(() => phones.setOwner(this.sql, input, now));
    this.changed();
    if (res.notified) await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    return { owner: res.owner, applied: res.applied };
  }

  /** No-op unless the number belongs to `userId`. An erasure wipes a number's object that holds nothing but the link. */
  async clearOwner(userId: string, at: number, via: roles.LinkVia): Promise<{ removed: boolean }> {
    this.expect(PHONE, "clearOwner");
    if (!this.schema.exists()) return { removed: false };
    if (phones.ownerRow(this.sql)?.user_id !== userId) return { removed: false };
    const now = Math.floor(Date.now() / 1000);
    if (via === "erasure" && phones.holdsOnlyALink(this.sql)) {
      // Nothing of its own to keep, but the unlink must outlast the wipe: a link in flight from an
      // older conversation would otherwise restore it.
      const unlinkedAt = Math.max(at, phones.ownerRow(this.sql)?.linked_at ?? at);
      await this.wipe();
      await this.ctx.storage.setAlarm(this.tombstones.write({ unlinkedAt }, now));
    } else phones.clearOwner(this.sql, at, via, now);
    this.changed();
    return { removed: true };
  }

  async addPhone(phoneNumber: string, at: number, via: roles.LinkVia): Promise<void> {
    this.expect(USERS, "addPhone");
    this.schema.ensure(Math.floor(Date.now() / 1000));
    phones.addPhone(this.sql, phoneNumber, at, via);
  }

  async removePhone(phoneNumber: string, at: number): Promise<{ removed: boolean }> {
    this.expect(USERS, "removePhone");
    return { removed: this.schema.exists() && phones.removePhone(this.sql, phoneNumber, at) };
  }

  // ---- delivery, retention, erasure ---------------------------------------------------------------

  override async alarm(): Promise<void> {
    if (this.ctx.id.name !== undefined && kindOfName(this.ctx.id.name) === "import") return this.importAlarm();
    try {
      await this.expireTombstone();
      await this.flush();
      if (this.schema.exists() && backfillPending(this.sql) && (await backfillRun(this.env, this.ctx.storage, Date.now()))) {
        // More to index: continue at once, in a new run, so webhooks and reads are served in between.
        await outbox.scheduleAlarm(this.ctx.storage, Date.now());
      }
      await retentionFromAlarm(this.retention(), Date.now());
    } catch (err) {
      // Failures of single items are handled inside the run; this is the run itself failing. The
      // runtime retries a throwing alarm only a few times before dropping it, which would strand
      // the outbox until the next event: re-arm it ourselves instead.
      console.error("outbox run failed; retrying in 60 s", err instanceof Error ? (err.stack ?? err.message) : String(err));
      await this.ctx.storage.setAlarm(Date.now() + ALARM_RETRY_MS);
    }
  }

  /** A tombstone past its time goes (with the whole object if it holds nothing else); one still due keeps the alarm armed. */
  private async expireTombstone(): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    if (this.tombstones.expire(now)) {
      if (!this.schema.exists()) await this.ctx.storage.deleteAll();
      return;
    }
    const t = this.tombstones.get();
    if (t !== null) await outbox.scheduleAlarm(this.ctx.storage, t.expiresAt * 1000);
  }

  async outboxStatus(): Promise<roles.OutboxStatus> {
    return this.schema.exists() ? outbox.outboxStatus(this.sql) : outbox.EMPTY_OUTBOX;
  }

  /** Delivers due outbox items. Safe at any time: a call waits for a run under way, then runs. Nothing leaves during an erasure. */
  async flush(): Promise<roles.FlushReport> {
    if (!this.schema.exists()) return { delivered: 0, failed: 0, pending: 0 };
    if (erasingSince(this.sql) !== null) return { delivered: 0, failed: 0, pending: outbox.pendingCount(this.sql) };
    await this.settle();
    const hadFailed = this.backlog.hadFailures();
    this.flushing = outbox.drain(this.ctx.storage, (row) => deliver({ env: this.env, sql: this.sql, seq: row.seq }, row.item));
    let report: roles.FlushReport;
    try {
      report = await this.flushing;
      const next = outbox.nextDueAt(this.sql);
      if (next !== null) await outbox.scheduleAlarm(this.ctx.storage, next);
    } finally {
      this.flushing = null;
    }
    // Only a run that failed, or that delivered what had failed before, tells the health page.
    await this.backlog.afterRun(report.failed, hadFailed);
    return report;
  }

  private async settle(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => {});
  }

  private retention() {
    const ctx = { env: this.env, storage: this.ctx.storage, forgetOwn: (id: string) => this.forgetConversation(id) };
    return { ...ctx, exists: () => this.schema.exists(), changed: () => this.changed() };
  }

  /** Applies retention now, whatever the anchor says (the daily sweep). Continues by alarm when there is more. */
  async applyRetention(): Promise<roles.RetentionReport> {
    return applyRetention(this.retention(), Date.now(), true);
  }

  /** One step of erasing this user everywhere (DELETE /v1/users/:userId). Call until `done`. */
  async erase(userId: string): Promise<roles.EraseStep> {
    this.expect(USERS, "erase");
    try {
      return await eraseStep(
        {
          env: this.env,
          storage: this.ctx.storage,
          hasSchema: () => this.schema.exists(),
          settle: () => this.settle(),
          wipe: () => this.wipe(),
          tombstone: (erasedAt) => this.leaveTombstone(erasedAt),
          changed: () => this.changed(),
        },
        userId,
      );
    } finally {
      // Also cleared where each step writes (releaseNumber); this covers a step that threw midway.
      this.changed();
    }
  }

  /** Drops every table and the alarm (in SQLite-backed objects deleteAll() drops the tables too); returns the rows held. */
  private async wipe(): Promise<number> {
    const rows = this.schema.exists() ? countRows(this.sql) : 0;
    const reported = await this.backlog.listed();
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.schema.reset();
    this.tombstones.reset();
    this.changed();
    if (reported) await this.backlog.withdraw();
    return rows;
  }

  // ---- the health counters (the stats:global object only) -----------------------------------------

  async recordCounts(batch: roles.CountBatch): Promise<void> {
    this.expect(STATS, "recordCounts");
    stats.addCounts(this.ctx.storage, batch, Math.floor(Date.now() / 1000));
  }

  async reportBacklog(report: roles.BacklogReport): Promise<void> {
    this.expect(STATS, "reportBacklog");
    stats.reportBacklog(this.ctx.storage, report);
  }

  async readStats(nowSeconds: number): Promise<roles.StatsView> {
    this.expect(STATS, "readStats");
    return stats.readStats(this.sql, nowSeconds);
  }

  /**
   * The end of an erasure, after the wipe: the tombstone (as of when the erasure began), then the
   * calls made since the erasure began, which were kept aside (`deferred`) and are remembered now.
   * `deferred` was read before the wipe by the erasure (src/memory/erasure.ts).
   */
  private async leaveTombstone(erasure: { erasedAt: number; deferred: outbox.DeferredConversation[] }): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    let alarmAt = this.tombstones.write({ erasedAt: erasure.erasedAt }, now);
    for (const d of erasure.deferred) {
      this.schema.ensure(d.receivedAt);
      if (isDuplicate(this.sql, "post_call_transcription", d.record.conversationId)) continue;
      this.ctx.storage.transactionSync(() => commitConversation(this.sql, this.env, d.record, d.raw, d.receivedAt));
      alarmAt = Date.now();
    }
    this.changed();
    await this.ctx.storage.setAlarm(alarmAt);
  }
}
