/**
 * postcall with meters on every storage call, for the cost model (bench/lib/cost.mjs,
 * docs/cost-and-capacity.md). The service's code runs unchanged: this entry wraps the bindings it
 * is given (and the Durable Object's storage) and counts what passes through. Bench only: never
 * deployed, and the counters are readable at /__bench/counters.
 */
import worker, {
  ConversationLedger as BaseLedger,
  HealthStats as BaseStats,
  HistoryImport as BaseImport,
  UserMemory as BaseMemory,
} from "../../src/index";
import type { Env } from "../../src/lib/env";

interface Counters {
  workerRequests: number;
  doRequests: Record<string, number>;
  doWallMs: number;
  doSqlRowsRead: number;
  doSqlRowsWritten: number;
  doSqlStatements: number;
  doSetAlarm: number;
  /** The same SQL meters by Durable Object class (UserMemory, ConversationLedger, HealthStats, HistoryImport). */
  doSqlByClass: Record<string, { statements: number; rowsRead: number; rowsWritten: number }>;
  d1Batches: number;
  d1Statements: number;
  d1RowsRead: number;
  d1RowsWritten: number;
  /** D1 calls whose rows the meters cannot see (`exec` returns no meta): a non-zero count means rows are missing. */
  d1Unmetered: number;
  r2ClassA: Record<string, number>;
  r2ClassB: Record<string, number>;
  r2BytesPut: number;
}

const fresh = (): Counters => ({
  workerRequests: 0,
  doRequests: {},
  doWallMs: 0,
  doSqlRowsRead: 0,
  doSqlRowsWritten: 0,
  doSqlStatements: 0,
  doSetAlarm: 0,
  doSqlByClass: {},
  d1Batches: 0,
  d1Statements: 0,
  d1RowsRead: 0,
  d1RowsWritten: 0,
  d1Unmetered: 0,
  r2ClassA: {},
  r2ClassB: {},
  r2BytesPut: 0,
});
// The Worker and its Durable Objects run in one isolate in workerd, so one module-level record sees both.
let counters = fresh();
const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

// ---- D1: rows as D1 bills them, from each result's meta ----------------------------------------------

type Meta = { rows_read?: number; rows_written?: number };
function countMeta(meta: Meta | undefined) {
  counters.d1RowsRead += meta?.rows_read ?? 0;
  counters.d1RowsWritten += meta?.rows_written ?? 0;
}

const realStatement = new WeakMap<object, D1PreparedStatement>();
function meteredStatement(st: D1PreparedStatement): D1PreparedStatement {
  const proxy = new Proxy(st, {
    get(target, prop) {
      if (prop === "bind") return (...args: unknown[]) => meteredStatement(target.bind(...args));
      if (prop === "run" || prop === "all") {
        return async () => {
          counters.d1Statements++;
          const r = await target.all();
          countMeta(r.meta as Meta);
          return r;
        };
      }
      if (prop === "raw") {
        // raw() returns no meta: run all() and return its rows as arrays, in column order.
        return async (options?: { columnNames?: boolean }) => {
          counters.d1Statements++;
          const r = await target.all<Record<string, unknown>>();
          countMeta(r.meta as Meta);
          const rows = r.results.map((row) => Object.values(row));
          return options?.columnNames ? [Object.keys(r.results[0] ?? {}), ...rows] : rows;
        };
      }
      if (prop === "first") {
        // first() returns no meta: run all() and take the first row, as first() would.
        return async (column?: string) => {
          counters.d1Statements++;
          const r = await target.all<Record<string, unknown>>();
          countMeta(r.meta as Meta);
          const row = r.results[0] ?? null;
          return column === undefined || row === null ? row : row[column];
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  realStatement.set(proxy, st);
  return proxy;
}

// Generic over what the service does: any number of statements, single or batched, on the database
// or on a session (withSession); every result's meta is added up.
function meteredD1<T extends D1Database | D1DatabaseSession>(db: T): T {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare") return (q: string) => meteredStatement(target.prepare(q));
      if (prop === "withSession" && "withSession" in target) {
        return (...args: Parameters<D1Database["withSession"]>) => meteredD1((target as D1Database).withSession(...args));
      }
      if (prop === "exec" && "exec" in target) {
        return (q: string) => {
          counters.d1Unmetered++;
          return (target as D1Database).exec(q);
        };
      }
      if (prop === "batch") {
        return async (statements: D1PreparedStatement[]) => {
          counters.d1Batches++;
          counters.d1Statements += statements.length;
          const results = await target.batch(statements.map((s) => realStatement.get(s) ?? s));
          for (const r of results) countMeta(r.meta as Meta);
          return results;
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

// ---- R2: operations by class (https://developers.cloudflare.com/r2/pricing/) -------------------------

const CLASS_A = new Set(["put", "list", "createMultipartUpload", "resumeMultipartUpload"]);
const CLASS_B = new Set(["get", "head"]);

function meteredUpload(upload: R2MultipartUpload): R2MultipartUpload {
  return new Proxy(upload, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      if (prop === "uploadPart" || prop === "complete") {
        return (...args: unknown[]) => {
          bump(counters.r2ClassA, String(prop));
          const part = args[1];
          if (prop === "uploadPart" && part && typeof part === "object" && "byteLength" in part) counters.r2BytesPut += (part as ArrayBufferView).byteLength;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return v.bind(target); // abort is free
    },
  });
}

function meteredR2(bucket: R2Bucket): R2Bucket {
  return new Proxy(bucket, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      const name = String(prop);
      return async (...args: unknown[]) => {
        if (CLASS_A.has(name)) bump(counters.r2ClassA, name);
        if (CLASS_B.has(name)) bump(counters.r2ClassB, name);
        const result = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (name === "put" && result && typeof result === "object" && "size" in result) counters.r2BytesPut += (result as R2Object).size;
        if (name === "createMultipartUpload" || name === "resumeMultipartUpload") return meteredUpload(result as R2MultipartUpload);
        return result;
      };
    },
  });
}

// ---- Durable Object storage: SQL rows as Durable Objects bill them (cursor.rowsRead/rowsWritten) ----

function meteredSql(sql: SqlStorage, pending: PendingCursor[], cls: string): SqlStorage {
  return new Proxy(sql, {
    get(target, prop) {
      if (prop === "exec") {
        return (query: string, ...bindings: unknown[]) => {
          counters.doSqlStatements++;
          (counters.doSqlByClass[cls] ??= { statements: 0, rowsRead: 0, rowsWritten: 0 }).statements++;
          const cursor = target.exec(query, ...bindings);
          pending.push({ cursor, cls });
          return cursor;
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

function meteredState(ctx: DurableObjectState, pending: PendingCursor[], cls: string): DurableObjectState {
  // One metered handle per object, so a field swapped for it is the same handle as ctx.storage.sql.
  const sql = meteredSql(ctx.storage.sql, pending, cls);
  const storage = new Proxy(ctx.storage, {
    get(target, prop) {
      if (prop === "sql") return sql;
      if (prop === "setAlarm") counters.doSetAlarm++;
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return new Proxy(ctx, {
    get(target, prop) {
      if (prop === "storage") return storage;
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** Each Durable Object binding, metered where its stubs are made, and the label its requests are counted under. */
const NAMESPACES = {
  USER_MEMORY: "", // as before Core v3: UserMemory's methods are counted by name alone
  CONVERSATION_LEDGER: "ledger.",
  HEALTH_STATS: "stats.",
  HISTORY_IMPORT: "import.",
} as const;
type Binding = keyof typeof NAMESPACES;

const meteredEnvs = new WeakMap<object, Env>();
/** One metered copy per env, so every holder of it (the Worker, each object, their helpers) shares the same meters. */
function meteredEnv(env: Env): Env {
  let m = meteredEnvs.get(env);
  if (!m) {
    m = { ...env, DB: meteredD1(env.DB), AUDIO: meteredR2(env.AUDIO) };
    for (const [binding, label] of Object.entries(NAMESPACES) as [Binding, string][]) {
      (m as unknown as Record<Binding, unknown>)[binding] = meteredNamespace(env[binding] as unknown as DurableObjectNamespace, label);
    }
    meteredEnvs.set(env, m);
    meteredEnvs.set(m, m);
  }
  return m;
}

type PendingCursor = { cursor: SqlStorageCursor<Record<string, SqlStorageValue>>; cls: string };
const cursors: PendingCursor[] = [];
/** Rows are final once a cursor is consumed: they are added up when the counters are read. */
function settleCursors() {
  for (const { cursor, cls } of cursors.splice(0)) {
    counters.doSqlRowsRead += cursor.rowsRead;
    counters.doSqlRowsWritten += cursor.rowsWritten;
    const by = (counters.doSqlByClass[cls] ??= { statements: 0, rowsRead: 0, rowsWritten: 0 });
    by.rowsRead += cursor.rowsRead;
    by.rowsWritten += cursor.rowsWritten;
  }
}

/**
 * Puts the meters into an object of class `cls`. The runtime's base class insists on the real state
 * object, so they go in after `super()`: ctx and env are shadowed, and every field that kept
 * ctx.storage.sql, ctx.storage or env (on the object itself, or one level down, in the helpers it
 * holds: its Schema, Tombstones, BacklogReporter) gets the metered handle. Returns how many
 * SQL handles it replaced.
 */
function instrument(self: object, ctx: DurableObjectState, env: Env, cls: string): number {
  const state = meteredState(ctx, cursors, cls);
  const menv = meteredEnv(env);
  Object.defineProperty(self, "ctx", { value: state });
  Object.defineProperty(self, "env", { value: menv });
  let sqlHandles = 0;
  const swap = (holder: Record<string, unknown>) => {
    for (const k of Object.keys(holder)) {
      const v = holder[k];
      if (v === ctx.storage.sql) {
        holder[k] = state.storage.sql;
        sqlHandles++;
      } else if (v === ctx.storage) holder[k] = state.storage;
      else if (v === env) holder[k] = menv;
    }
  };
  const fields = self as Record<string, unknown>;
  swap(fields);
  for (const k of Object.keys(fields)) {
    const v = fields[k];
    if (v !== null && typeof v === "object" && k !== "ctx" && k !== "env" && !ArrayBuffer.isView(v)) swap(v as Record<string, unknown>);
  }
  return sqlHandles;
}

/** A Durable Object bills one request per alarm invocation (RPC calls are counted on the stubs). */
async function meteredAlarm(label: string, run: () => Promise<void>): Promise<void> {
  bump(counters.doRequests, `${label}alarm`);
  const t0 = Date.now();
  try {
    await run();
  } finally {
    // workerd's clock moves only across I/O, so this is time spent waiting on storage, which is
    // what Durable Object duration bills.
    counters.doWallMs += Date.now() - t0;
  }
}

/** Bench probe (not metered): an object's SQLite size in bytes. */
const databaseSize = (ctx: DurableObjectState): number => ctx.storage.sql.databaseSize;

// One metered subclass per class in wrangler.toml (Miniflare loads every class a binding names).
// A Durable Object bills one request per RPC call on a stub and one per alarm invocation: RPC calls
// are counted where they are made (the stubs from the metered env), alarms here.

export class UserMemory extends BaseMemory {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    if (instrument(this, ctx, env, "UserMemory") === 0) throw new Error("instrumented: UserMemory keeps no ctx.storage.sql handle to meter");
  }
  override alarm(): Promise<void> {
    return meteredAlarm(NAMESPACES.USER_MEMORY, () => super.alarm());
  }
  benchDatabaseSize(): number {
    return databaseSize(this.ctx);
  }
}

export class ConversationLedger extends BaseLedger {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    if (instrument(this, ctx, env, "ConversationLedger") === 0) throw new Error("instrumented: ConversationLedger keeps no ctx.storage.sql handle to meter");
  }
  override alarm(): Promise<void> {
    return meteredAlarm(NAMESPACES.CONVERSATION_LEDGER, () => super.alarm());
  }
  benchDatabaseSize(): number {
    return databaseSize(this.ctx);
  }
}

export class HealthStats extends BaseStats {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    instrument(this, ctx, env, "HealthStats"); // holds no handle of its own: it reads this.ctx.storage
  }
  benchDatabaseSize(): number {
    return databaseSize(this.ctx);
  }
}

export class HistoryImport extends BaseImport {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    instrument(this, ctx, env, "HistoryImport");
  }
  override alarm(): Promise<void> {
    return meteredAlarm(NAMESPACES.HISTORY_IMPORT, () => super.alarm());
  }
  benchDatabaseSize(): number {
    return databaseSize(this.ctx);
  }
}

function meteredStub<T extends object>(stub: T, label: string): T {
  return new Proxy(stub, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function" || typeof prop !== "string" || prop === "then" || prop === "benchDatabaseSize") return v;
      return async (...args: unknown[]) => {
        bump(counters.doRequests, `${label}${prop}`);
        const t0 = Date.now();
        try {
          // Called as a method of the stub itself: an RPC stub's functions are not plain functions.
          return await (target as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[prop]!(...args);
        } finally {
          counters.doWallMs += Date.now() - t0;
        }
      };
    },
  });
}

function meteredNamespace(ns: DurableObjectNamespace, label: string): DurableObjectNamespace {
  return new Proxy(ns, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (prop === "get") return (...args: Parameters<typeof ns.get>) => meteredStub(target.get(...args), label);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** The binding an object name lives on (src/records/object-names.ts); `?binding=USER_MEMORY` reads a pre-Core v3 object. */
function bindingOf(name: string): Binding {
  if (name.startsWith("conversation:")) return "CONVERSATION_LEDGER";
  if (name.startsWith("stats:")) return "HEALTH_STATS";
  if (name.startsWith("import:")) return "HISTORY_IMPORT";
  return "USER_MEMORY";
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/__bench/counters") {
      settleCursors();
      return Response.json(counters);
    }
    if (url.pathname === "/__bench/reset") {
      settleCursors();
      counters = fresh();
      return Response.json({ ok: true });
    }
    if (url.pathname === "/__bench/do-size") {
      const name = url.searchParams.get("name") ?? "";
      const binding = (url.searchParams.get("binding") as Binding | null) ?? bindingOf(name);
      const ns = env[binding] as unknown as DurableObjectNamespace;
      const stub = ns.get(ns.idFromName(name)) as unknown as { benchDatabaseSize(): Promise<number> };
      return Response.json({ bytes: await stub.benchDatabaseSize() });
    }
    counters.workerRequests++;
    return worker.fetch(request, meteredEnv(env), ctx);
  },
} satisfies ExportedHandler<Env>;
