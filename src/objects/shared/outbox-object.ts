/**
 * What the two classes with an outbox (UserMemory, ConversationLedger) share: the object's name and
 * the run-time check of its kind, its schema, tombstone and outbox, the delivery run, the alarm and
 * the wipe. Each class says which kinds of name it serves, its tables and its handlers.
 *
 * The kind check: stubs are typed by class (wrangler types), so calling a method of another class
 * does not compile; at run time every public method first checks that this object's name is one of
 * the kinds the method serves. A name postcall never gives out (or none, for an object reached by
 * id) is refused, never let through.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../../lib/env";
import { kindOfName, type ObjectKind } from "../../records/object-names";
import type { FlushReport, OutboxStatus, RetentionReport } from "../../memory/rpc";
import { BacklogReporter, runState } from "./backlog-report";
import { deliverWith, type Handlers } from "./deliveries";
import * as outbox from "./outbox";
import { EMPTY_OUTBOX, outboxStatus } from "./outbox-status";
import { applyRetention, retentionFromAlarm, type ObjectRetention } from "./retention";
import { Schema, type SchemaSpec } from "./tables";
import { Tombstones } from "./tombstone";

/** When the alarm handler itself fails (not one item), try the whole run again after this long. */
export const ALARM_RETRY_MS = 60 * 1000;

export class WrongObjectError extends Error {}

export abstract class OutboxObject<I extends outbox.OutboxItem> extends DurableObject<Env> {
  protected readonly sql: SqlStorage;
  protected readonly schema: Schema;
  protected readonly tombstones: Tombstones;
  /** This object's name, and its kind (null: not a name postcall gives out). */
  protected readonly name: string | null;
  protected readonly kind: ObjectKind | null;
  private flushing: Promise<FlushReport> | null = null;
  /** This object's outbox as the health page sees it (backlog-report.ts). */
  protected readonly backlog: BacklogReporter;

  constructor(ctx: DurableObjectState, env: Env, tables: SchemaSpec, private readonly handlers: Handlers<I>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.schema = new Schema(ctx.storage, tables);
    this.tombstones = new Tombstones(ctx.storage.sql);
    this.name = ctx.id.name ?? null;
    this.kind = this.name === null ? null : kindOfName(this.name);
    this.backlog = new BacklogReporter(env, ctx.storage, this.name ?? ctx.id.toString());
  }

  /** The kinds of name this class serves (each public method may narrow it). */
  protected abstract readonly serves: readonly ObjectKind[];

  /** Refuses a method asked of an object whose name is not of one of `kinds`. */
  protected expect(method: string, kinds: readonly ObjectKind[] = this.serves): void {
    if (this.kind === null || !kinds.includes(this.kind)) {
      throw new WrongObjectError(`${method} is not a method of ${this.kind === null ? "an object with this name" : `a ${this.kind} object`} (${this.constructor.name})`);
    }
  }

  /** Where every public method starts: the name check (a class may add to it: the ledger's take-over). */
  protected async enter(method: string): Promise<void> {
    this.expect(method);
  }

  /** Tells the class that what a read serves changed (UserMemory keeps a copy); called once a write has committed. */
  protected changed(): void {}

  /** The object's user for retention (a memory's owner; null for a ledger). */
  protected abstract retentionOwner(): string | null;

  // ---- delivery -------------------------------------------------------------------------------------

  async outboxStatus(): Promise<OutboxStatus> {
    await this.enter("outboxStatus");
    return this.schema.exists() ? outboxStatus(this.sql) : EMPTY_OUTBOX;
  }

  /** Delivers due outbox items. Safe at any time: a call waits for a run under way, then runs. Nothing leaves during an erasure. */
  async flush(): Promise<FlushReport> {
    await this.enter("flush");
    return this.deliverDue();
  }

  protected async deliverDue(): Promise<FlushReport> {
    if (!this.schema.exists()) return { delivered: 0, failed: 0, pending: 0 };
    const before = runState(this.sql);
    if (before.erasing) return { delivered: 0, failed: 0, pending: outbox.pendingCount(this.sql) };
    // Whether items had failed, as of the start of this run: read again if another run was under way.
    const waited = this.flushing !== null;
    await this.settle();
    const hadFailed = waited ? this.backlog.hadFailures() : before.hadFailed;
    const run = outbox.drain(this.ctx.storage, (row) => deliverWith(this.handlers, { env: this.env, sql: this.sql, seq: row.seq, payload: row.payload }, row.item as I));
    this.flushing = run.then((r) => r.report);
    this.flushing.catch(() => {}); // awaited below (as `run`); settle() waits for it without its error
    let report: FlushReport;
    try {
      const { report: done, next } = await run;
      report = done;
      if (next !== null) await outbox.scheduleAlarm(this.ctx.storage, next);
    } finally {
      this.flushing = null;
    }
    // Only a run that failed, or that delivered what had failed before, tells the health page.
    await this.backlog.afterRun(report.failed, hadFailed);
    return report;
  }

  protected async settle(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => {});
  }

  /**
   * One alarm serves the outbox and retention: it drops an expired tombstone, delivers what is due,
   * runs the class's own step (`afterDelivery`), then removes conversations that have expired.
   */
  override async alarm(): Promise<void> {
    try {
      await this.expireTombstone();
      await this.deliverDue();
      await this.afterDelivery();
      await retentionFromAlarm(this.retention(), Date.now());
    } catch (err) {
      // Failures of single items are handled inside the run; this is the run itself failing. The
      // runtime retries a throwing alarm only a few times before dropping it, which would strand
      // the outbox until the next event: re-arm it ourselves instead.
      // The message, not the stack: this is a handled condition, retried, and each item's own failures are logged with it.
      console.error(`outbox run failed; retrying in 60 s: ${err instanceof Error ? err.message : String(err)}`);
      await this.ctx.storage.setAlarm(Date.now() + ALARM_RETRY_MS);
    }
  }

  protected async afterDelivery(): Promise<void> {}

  /**
   * A tombstone past its time goes (with the whole object if it holds nothing else: an object with an
   * erasure mark keeps the mark forever); one still due keeps the alarm armed.
   */
  private async expireTombstone(): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    if (this.tombstones.expire(now)) {
      if (!this.schema.exists() && !this.tombstones.marked()) await this.ctx.storage.deleteAll();
      return;
    }
    const t = this.tombstones.get();
    if (t !== null) await outbox.scheduleAlarm(this.ctx.storage, t.expiresAt * 1000);
  }

  /**
   * A redelivery changes nothing, but it is a chance to repair a missing alarm: if the first delivery
   * committed and then failed to set its alarm (so the sender saw a 5xx and retried), the outbox
   * would otherwise wait for the next event to be drained.
   */
  protected async repairAlarm(): Promise<void> {
    const next = outbox.nextDueAt(this.sql);
    if (next !== null) await outbox.scheduleAlarm(this.ctx.storage, next);
  }

  // ---- retention and the wipe -------------------------------------------------------------------------

  protected retention(): ObjectRetention {
    return {
      env: this.env,
      storage: this.ctx.storage,
      owner: () => this.retentionOwner(),
      forgetOwn: () => this.forgetSelf(),
      exists: () => this.schema.exists(),
      changed: () => this.changed(),
    };
  }

  /** A ledger whose conversation expired wipes itself (a memory never does: it is its user's). */
  protected async forgetSelf(): Promise<void> {}

  /** Applies retention now, whatever the anchor says (the daily sweep). Continues by alarm when there is more. */
  async applyRetention(): Promise<RetentionReport> {
    await this.enter("applyRetention");
    return applyRetention(this.retention(), Date.now(), true);
  }

  /** Drops every table and the alarm (in SQLite-backed objects deleteAll() drops the tables too); returns the rows held. */
  protected async wipe(countRows: () => number): Promise<number> {
    const rows = this.schema.exists() ? countRows() : 0;
    const reported = await this.backlog.listed();
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.schema.reset();
    this.tombstones.reset();
    this.changed();
    if (reported) await this.backlog.withdraw();
    return rows;
  }
}
