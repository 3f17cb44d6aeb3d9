/**
 * HealthStats (binding HEALTH_STATS): the one `stats:global` object that keeps the health counters
 * and the failing outboxes (stats.ts, docs/health.md). Before Core v3 they lived in a UserMemory
 * object of the same name; they are counters of the last 31 days, not memory, so nothing is moved:
 * the health page starts counting again after the deploy, and the old object is never read again.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../../lib/env";
import { STATS_OBJECT_NAME } from "../../records/object-names";
import type { BacklogReport, CountBatch, StatsView } from "../../memory/rpc";
import { WrongObjectError } from "../shared/outbox-object";
import * as stats from "./stats";

export class HealthStats extends DurableObject<Env> {
  private expect(method: string): void {
    if (this.ctx.id.name !== STATS_OBJECT_NAME) throw new WrongObjectError(`${method} is a method of the ${STATS_OBJECT_NAME} object only (HealthStats)`);
  }

  async recordCounts(batch: CountBatch): Promise<void> {
    this.expect("recordCounts");
    stats.addCounts(this.ctx.storage, batch, Math.floor(Date.now() / 1000));
  }

  async reportBacklog(report: BacklogReport): Promise<void> {
    this.expect("reportBacklog");
    stats.reportBacklog(this.ctx.storage, report);
  }

  async readStats(nowSeconds: number): Promise<StatsView> {
    this.expect("readStats");
    return stats.readStats(this.ctx.storage.sql, nowSeconds);
  }
}
