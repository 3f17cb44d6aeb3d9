/**
 * UserMemory (binding USER_MEMORY): a user's memory, or a phone number's (`user:<id>`,
 * `user:<+E164>`, and `agent:<agent>:user:<id>` under MEMORY_SCOPE="agent"). A shell: each RPC
 * method checks the object's name, opens a transaction where it writes, and calls the module that
 * does the job: profile and facts, the recall index, phone links, erasure; the outbox, the alarm and
 * retention are shared with the ledger (../shared/outbox-object.ts). docs/storage.md lists the tables.
 *
 * Objects named `conversation:` or `import:` that were written before Core v3 also live in this
 * class: they answer only the hand-over (legacy.ts).
 */
import type { Env } from "../../lib/env";
import type { ObjectKind } from "../../records/object-names";
import type { MemoryRecord } from "../../records/payload";
import type * as rpc from "../../memory/rpc";
import { ledgerObject, importObject } from "../../memory/objects";
import { isDuplicate } from "../shared/dedupe";
import * as outbox from "../shared/outbox";
import { OutboxObject } from "../shared/outbox-object";
import { commitTranscription } from "../shared/recording";
import { countRows, erasingSince } from "../shared/tables";
import { MEMORY_DELIVERIES } from "./deliveries";
import { eraseStep, recordDuringErasure, takenByAnErasure } from "./erasure";
import { exportConversation, exportImport, legacyIdentity } from "./legacy";
import * as phones from "./phone-links";
import * as profile from "./profile";
import { recall, type RecallHit } from "./recall";
import { backfillPending, backfillRun } from "./recall-backfill";
import { describeMemory, rememberConversation } from "./remember";
import { MEMORY_TABLES } from "./schema";
import { config } from "../../lib/config";
import { EMPTY_SNAPSHOT, type MemorySnapshot } from "../../memory/variables";

const PHONE: readonly ObjectKind[] = ["phone"];
const LEGACY: readonly ObjectKind[] = ["conversation", "import"];
const nowSeconds = () => Math.floor(Date.now() / 1000);

export class UserMemory extends OutboxObject<outbox.UserOutboxItem> {
  protected readonly serves: readonly ObjectKind[] = ["user", "phone"];
  /**
   * What a read serves (the snapshot and the number's owner), kept in memory between writes. Safe
   * because this instance is the only writer of its storage: every method that changes what it
   * holds calls `changed()` once the change is committed, before it awaits anything. Unlike the
   * per-isolate CONTEXT_CACHE_SECONDS cache, it can never be stale (bench:profile: three SQL
   * statements saved per context read).
   */
  private served: { snapshot: MemorySnapshot; linkedTo: string | null } | null = null;
  private backfillArmed = false;
  private erasing: boolean | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, MEMORY_TABLES, MEMORY_DELIVERIES);
  }

  protected override changed(): void {
    this.served = null;
    this.erasing = null;
  }

  protected retentionOwner(): string | null {
    return this.schema.exists() ? profile.profileUser(this.sql) : null;
  }

  protected override retention() {
    return { ...super.retention(), forgetBefore: (cutoff: number) => profile.forgetBefore(this.sql, cutoff) };
  }

  // ---- recording -------------------------------------------------------------------------------------

  /** Commits a transcription (src/objects/shared/recording.ts) after the rules: tombstone, erasure under way, phone link, dedupe. */
  async recordConversation(input: { record: MemoryRecord; raw: Uint8Array; receivedAt: number }): Promise<rpc.RecordResult> {
    this.expect("recordConversation");
    const { record: r, raw, receivedAt } = input;
    // Erasure that lasts (../shared/tombstone.ts): what an erasure of this object, or of a user this number was linked to, took.
    if (await takenByAnErasure(this.env, this.tombstones, this.schema.exists() ? this.sql : null, r)) return { duplicate: false, dropped: "erased" };
    const during = this.schema.exists() ? recordDuringErasure(this.ctx.storage, input) : false; // no tables: nothing seen
    if (typeof during !== "boolean") return during;
    if (r.userIdSource === "phone_number" && this.schema.exists()) {
      // A number's object. A redelivery of a conversation recorded here before the number was linked
      // stays a duplicate here rather than being counted again for the app user.
      if (during) return { duplicate: true };
      const owner = phones.ownerRow(this.sql)?.user_id ?? null;
      if (owner !== null) return { duplicate: false, linkedTo: owner };
    }
    this.schema.ensure(receivedAt);
    if (during) {
      await this.repairAlarm();
      return { duplicate: true };
    }
    this.commit(r, raw, receivedAt);
    await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    return { duplicate: false };
  }

  private commit(r: MemoryRecord, raw: Uint8Array, receivedAt: number): void {
    this.ctx.storage.transactionSync(() => commitTranscription(this.sql, this.env, r, raw, receivedAt, (sql) => rememberConversation(sql, r, raw, receivedAt)));
    this.changed();
  }

  async markAudio(conversationId: string): Promise<void> {
    this.expect("markAudio");
    if (this.schema.exists()) profile.markAudio(this.sql, conversationId);
    this.changed();
  }

  /** MEMORY_SCOPE="agent": records that this user has a memory with `agentId` (erasure finds it here). */
  async registerScope(agentId: string, at: number): Promise<void> {
    this.expect("registerScope");
    this.schema.ensure(at);
    this.sql.exec("INSERT OR IGNORE INTO memory_scopes (agent_id, registered_at) VALUES (?, ?)", agentId, at);
  }

  // ---- reads ---------------------------------------------------------------------------------------------

  /** What the next conversation needs. Never writes. */
  async snapshot(): Promise<MemorySnapshot> {
    this.expect("snapshot");
    const served = this.read()?.snapshot ?? EMPTY_SNAPSHOT;
    this.armBackfill();
    return served;
  }

  /** POST /tools/recall (recall.ts). Never writes. Nothing once an erasure has begun; nothing past retention. */
  async recall(input: { query: string; limit: number; excludeConversationId: string | null; now: number }): Promise<RecallHit[]> {
    this.expect("recall");
    if (!this.schema.exists() || this.isErasing()) return [];
    this.armBackfill();
    const days = config(this.env).retentionDays;
    return recall(this.sql, input.query, { ...input, cutoff: days === null ? null : input.now - days * 86_400 });
  }

  /** For the initiation webhook, in one round trip: the app user the number is linked to, or the number's own snapshot. */
  async resolveCaller(): Promise<{ linkedTo: string | null; snapshot: MemorySnapshot }> {
    this.expect("resolveCaller", PHONE);
    const served = this.read();
    if (served === null) return { linkedTo: null, snapshot: EMPTY_SNAPSHOT };
    return served.linkedTo !== null ? { linkedTo: served.linkedTo, snapshot: EMPTY_SNAPSHOT } : { linkedTo: null, snapshot: served.snapshot };
  }

  /** Everything this memory holds, or null when it holds nothing. Never writes. */
  async describe(): Promise<rpc.MemoryView | null> {
    this.expect("describe");
    if (!this.schema.exists()) return null;
    this.armBackfill();
    return describeMemory(this.sql);
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

  private isErasing(): boolean {
    this.erasing ??= erasingSince(this.sql) !== null;
    return this.erasing;
  }

  /** An object upgraded to the recall index holds conversations it has not indexed: arm the alarm once per instance (recall-backfill.ts). */
  private armBackfill(): void {
    if (this.backfillArmed) return;
    this.backfillArmed = true;
    if (this.schema.exists() && backfillPending(this.sql)) this.ctx.waitUntil(outbox.scheduleAlarm(this.ctx.storage, Date.now()));
  }

  protected override async afterDelivery(): Promise<void> {
    if (this.schema.exists() && backfillPending(this.sql) && (await backfillRun(this.env, this.ctx.storage, Date.now()))) {
      // More to index: continue at once, in a new run, so webhooks and reads are served in between.
      await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    }
  }

  // ---- phone links (phone-links.ts) ----------------------------------------------------------------------

  async setOwner(input: { phoneNumber: string; userId: string; at: number; via: rpc.LinkVia; conversationId: string | null }): Promise<rpc.OwnerResult> {
    this.expect("setOwner", PHONE);
    // A link no newer than an unlink or erasure this object survived (its tombstone) is not applied.
    const floor = this.tombstones.linkFloor();
    if (floor !== null && input.at <= floor) {
      return { owner: this.schema.exists() ? (phones.ownerRow(this.sql)?.user_id ?? null) : null, applied: false };
    }
    this.schema.ensure(nowSeconds());
    const res = this.ctx.storage.transactionSync(() => phones.setOwner(this.sql, input, nowSeconds()));
    this.changed();
    if (res.notified) await outbox.scheduleAlarm(this.ctx.storage, Date.now());
    return { owner: res.owner, applied: res.applied };
  }

  /** No-op unless the number belongs to `userId`. An erasure wipes a number's object holding only the link, and marks it (erasure.ts `takenByAnErasure`). */
  async clearOwner(userId: string, at: number, via: rpc.LinkVia): Promise<{ removed: boolean }> {
    this.expect("clearOwner", PHONE);
    if (!this.schema.exists() || phones.ownerRow(this.sql)?.user_id !== userId) return { removed: false };
    if (via === "erasure" && phones.holdsOnlyALink(this.sql)) {
      // Nothing of its own to keep, but the unlink must outlast the wipe: a link in flight from an
      // older conversation would otherwise restore it.
      const unlinkedAt = Math.max(at, phones.ownerRow(this.sql)?.linked_at ?? at);
      await this.wipe(() => countRows(this.sql));
      await this.ctx.storage.setAlarm(this.tombstones.write({ unlinkedAt }, nowSeconds()));
    } else phones.clearOwner(this.sql, at, via, nowSeconds());
    if (via === "erasure") this.tombstones.markLinkedErasure(at);
    this.changed();
    return { removed: true };
  }

  async addPhone(phoneNumber: string, at: number, via: rpc.LinkVia): Promise<void> {
    this.expect("addPhone");
    this.schema.ensure(nowSeconds());
    phones.addPhone(this.sql, phoneNumber, at, via);
  }

  async removePhone(phoneNumber: string, at: number): Promise<{ removed: boolean }> {
    this.expect("removePhone");
    return { removed: this.schema.exists() && phones.removePhone(this.sql, phoneNumber, at) };
  }

  // ---- erasure (erasure.ts) --------------------------------------------------------------------------------

  /** One step of erasing this user everywhere (DELETE /v1/users/:userId). Call until `done`. */
  async erase(userId: string, opts: rpc.EraseOptions = { atSource: false }): Promise<rpc.EraseStep> {
    this.expect("erase");
    try {
      return await eraseStep(
        {
          env: this.env,
          storage: this.ctx.storage,
          hasSchema: () => this.schema.exists(),
          settle: () => this.settle(),
          rows: () => (this.schema.exists() ? countRows(this.sql) : 0),
          wipe: () => this.wipe(() => countRows(this.sql)),
          tombstone: (erasedAt) => this.leaveTombstone(erasedAt),
          changed: () => this.changed(),
        },
        userId,
        opts,
      );
    } finally {
      // Also cleared where each step writes (releaseNumber); this covers a step that threw midway.
      this.changed();
    }
  }

  /**
   * The end of an erasure, after the wipe: the tombstone (as of when the erasure began), then the
   * calls made since the erasure began, which were kept aside (`deferred`) and are remembered now.
   */
  private async leaveTombstone(erasure: { erasedAt: number; held: string[]; deferred: outbox.DeferredConversation[] }): Promise<void> {
    let alarmAt = this.tombstones.write({ erasedAt: erasure.erasedAt }, nowSeconds());
    await this.tombstones.markHeld(erasure.held);
    for (const d of erasure.deferred) {
      this.schema.ensure(d.receivedAt);
      if (isDuplicate(this.sql, "post_call_transcription", d.record.conversationId)) continue;
      this.commit(d.record, d.raw, d.receivedAt);
      alarmAt = Date.now();
    }
    this.changed();
    await this.ctx.storage.setAlarm(alarmAt);
  }

  // ---- objects written before Core v3 (legacy.ts) ------------------------------------------------------------

  async handOverConversation(): Promise<rpc.LegacyConversation | null> {
    this.expect("handOverConversation", ["conversation"]);
    return exportConversation(this.sql, this.tombstones);
  }

  async handOverImport(): Promise<rpc.LegacyImport | null> {
    this.expect("handOverImport", ["import"]);
    return exportImport(this.sql);
  }

  /** Called by the new owner once it has committed what it took over. */
  async forgetLegacy(): Promise<void> {
    this.expect("forgetLegacy", LEGACY);
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.schema.reset();
    this.tombstones.reset();
  }

  override async alarm(): Promise<void> {
    // An old object with something due: its new owner takes it over now (which calls back here).
    const legacy = this.kind !== null && LEGACY.includes(this.kind) ? { kind: this.kind, id: this.name!.slice(this.name!.indexOf(":") + 1) } : this.name === null ? legacyIdentity(this.sql) : null;
    if (legacy !== null) {
      try {
        if (legacy.kind === "conversation") await ledgerObject(this.env, legacy.id).takeOver();
        else await importObject(this.env, legacy.id).importStatus();
      } catch (err) {
        console.error(`hand-over of ${this.name} failed; retrying in 60 s`, err instanceof Error ? err.message : String(err));
        await this.ctx.storage.setAlarm(Date.now() + 60_000);
      }
      return;
    }
    return super.alarm();
  }
}
