/**
 * HistoryImport (binding HISTORY_IMPORT): one history import from ElevenLabs' API per object,
 * `import:<id>`, driven by its alarm (imports.ts). Each imported conversation goes through the one
 * arrival path a webhook takes (src/memory/arrival.ts), so nothing is counted twice.
 *
 * An import that was running in a UserMemory object when Core v3 was deployed is taken over on
 * first touch: by its own alarm (the old object's alarm asks this one for its status), or by
 * `GET /v1/imports/:id`. Its cursor, counters, queue and failures move as they were, and it resumes
 * where it stopped (test/ledger-migration.test.ts).
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../../lib/env";
import { importObjectName, kindOfName } from "../../records/object-names";
import { legacyObject } from "../../memory/objects";
import type { ImportSpec, ImportStatus } from "../../memory/rpc";
import { ALARM_RETRY_MS, WrongObjectError } from "../shared/outbox-object";
import { importStep } from "./import-step";
import * as imports from "./imports";

export class HistoryImport extends DurableObject<Env> {
  private adopted: Promise<void> | null = null;

  /** The name check, then (once per instance) the take-over of an import started before Core v3. */
  private async open(method: string): Promise<void> {
    const name = this.ctx.id.name;
    if (name === undefined || kindOfName(name) !== "import") throw new WrongObjectError(`${method} is a method of an import object only (HistoryImport)`);
    this.adopted ??= this.adopt(name.slice("import:".length));
    try {
      await this.adopted;
    } catch (err) {
      this.adopted = null;
      throw err;
    }
  }

  private async adopt(importId: string): Promise<void> {
    if (imports.holdsJob(this.ctx.storage.sql)) return;
    const old = legacyObject(this.env, importObjectName(importId));
    const state = await old.handOverImport();
    if (state === null) return;
    imports.adoptJob(this.ctx.storage, state);
    await old.forgetLegacy();
    if (state.job["status"] === "running") await this.ctx.storage.setAlarm(Date.now());
  }

  async startImport(spec: ImportSpec): Promise<ImportStatus> {
    await this.open("startImport");
    return imports.startImport(this.ctx.storage, this.env, spec);
  }

  /** Null for an id no import was started under. Re-arms a running import's alarm if it was lost. */
  async importStatus(): Promise<ImportStatus | null> {
    await this.open("importStatus");
    return imports.importStatus(this.ctx.storage);
  }

  override async alarm(): Promise<void> {
    try {
      await this.open("alarm");
      const next = await importStep(this.ctx.storage, this.env);
      if (next !== null) await this.ctx.storage.setAlarm(next);
    } catch (err) {
      console.error("import step failed; retrying in 60 s", err instanceof Error ? (err.stack ?? err.message) : String(err));
      await this.ctx.storage.setAlarm(Date.now() + ALARM_RETRY_MS);
    }
  }
}
