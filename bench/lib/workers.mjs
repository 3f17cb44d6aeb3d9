// Builds Workers with esbuild and runs them through Miniflare's API (the same runtime the tests use),
// configured from wrangler.toml. Not `wrangler dev`: its inspector proxy mirrors every D1 query to the
// Node process (about 1 ms of Node CPU each), a cost no deployed Worker pays.
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions, unstable_splitSqlQuery } from "wrangler";
import { accessSync, constants, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = new URL("../../", import.meta.url).pathname;

const BUILTIN = new RegExp(`^(node:)?(${builtinModules.map((m) => m.replace(/[/.]/g, "\\$&")).join("|")})$`);

/**
 * Node built-ins under nodejs_compat, as wrangler bundles them: `import` stays an import of
 * `node:<name>`; a CommonJS `require()` (the ElevenLabs SDK has some) becomes a module that
 * re-exports the ES import, because an ES module bundle has no `require`.
 */
const nodeBuiltins = {
  name: "node-builtins",
  setup(b) {
    b.onResolve({ filter: BUILTIN }, (args) => {
      const name = args.path.replace(/^node:/, "");
      return args.kind === "require-call"
        ? { path: name, namespace: "node-builtin-require" }
        : { path: `node:${name}`, external: true };
    });
    b.onLoad({ filter: /.*/, namespace: "node-builtin-require" }, (args) => ({
      contents: `import lib from "node:${args.path}"; module.exports = lib;`,
      loader: "js",
    }));
  },
};

/** Bundles an entry point the way wrangler does for workerd (ES module, workerd/worker/browser conditions). */
export async function bundle(entry) {
  const result = await build({
    entryPoints: [join(ROOT, entry)],
    bundle: true,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    target: "es2022",
    external: ["cloudflare:*"],
    plugins: [nodeBuiltins],
    write: false,
    logLevel: "warning",
  });
  return result.outputFiles[0].text;
}

/** Compatibility settings and bindings from wrangler.toml (or `config`, relative to the repo), as the vitest pool reads them. */
export function wranglerOptions(config = "wrangler.toml") {
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, config));
  return workerOptions;
}

/**
 * The Durable Object bindings a Worker gets: `undefined`, every one in wrangler.toml (the service,
 * which exports every class they name: UserMemory, ConversationLedger, HealthStats, HistoryImport);
 * an array of binding names, only those (a baseline that exports only some of the classes; workerd
 * warns about a binding to a class the Worker does not export); an object, as given.
 */
function durableObjectsFor(base, durableObjects) {
  if (durableObjects === undefined) return base.durableObjects;
  if (!Array.isArray(durableObjects)) return durableObjects;
  return Object.fromEntries(
    durableObjects.map((b) => {
      if (!base.durableObjects?.[b]) throw new Error(`no Durable Object binding ${b} in wrangler.toml`);
      return [b, base.durableObjects[b]];
    }),
  );
}

/**
 * Where local storage lives: a RAM-backed tmpfs when there is one. Locally, D1, R2 and Durable Object
 * storage are SQLite files written by the one workerd thread, so on a disk every commit's fsync stalls
 * every request in the process (it more than halved the storage floor's throughput on this machine).
 * Deployed Workers never pay that: their storage is remote and does not block the isolate.
 * BENCH_STORAGE_DIR overrides it (e.g. to measure on disk).
 */
function storageRoot() {
  if (process.env.BENCH_STORAGE_DIR) return process.env.BENCH_STORAGE_DIR;
  try {
    accessSync("/dev/shm", constants.W_OK);
    return "/dev/shm";
  } catch {
    return tmpdir();
  }
}

// Storage directories of the Workers started by this process, removed however the process ends
// (Miniflare already stops its workerd when Node exits).
const storageDirs = new Set();
process.on("exit", () => {
  for (const dir of storageDirs) rmSync(dir, { recursive: true, force: true });
});

/** workerd processes started by this Node process (Miniflare spawns one per instance). */
function workerdChildren() {
  const out = new Set();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === process.pid && stat.includes("(workerd)")) out.add(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

/**
 * CPU seconds (user + system, all threads) a process has used so far: the cost of the work it did,
 * which, unlike requests per second, hardly depends on what else is running on a shared machine.
 */
export function cpuSeconds(pid) {
  if (pid === null || process.platform !== "linux") return NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100 on Linux)
}

/**
 * Starts one Worker on 127.0.0.1 and a free port, with its own empty storage directory (deleted by
 * `dispose()`), so every run starts empty. `config`: another wrangler.toml (bench:ab's older tree's);
 * `durableObjects`: see durableObjectsFor. `miniflareOptions` are passed on to Miniflare as they are
 * (e.g. `handleRuntimeStdio`, to read workerd's output).
 */
export async function startWorker({ name, entry, config, bindings = {}, storage = true, durableObjects, inspectorPort, miniflareOptions = {} }) {
  const base = wranglerOptions(config);
  const script = await bundle(entry);
  const before = process.platform === "linux" ? workerdChildren() : new Set();
  const persistRoot = mkdtempSync(join(storageRoot(), `postcall-bench-${name}-`));
  storageDirs.add(persistRoot);
  const mf = new Miniflare({
    defaultPersistRoot: persistRoot,
    name,
    host: "127.0.0.1",
    port: 0,
    ...(inspectorPort !== undefined ? { inspectorPort } : {}),
    modules: true,
    script,
    scriptPath: join(ROOT, "bench", ".build", `${name}.mjs`),
    compatibilityDate: base.compatibilityDate,
    compatibilityFlags: base.compatibilityFlags,
    bindings: { ...(storage ? base.bindings : {}), ...bindings },
    ...(storage
      ? { d1Databases: base.d1Databases, r2Buckets: base.r2Buckets, durableObjects: durableObjectsFor(base, durableObjects) }
      : {}),
    ...miniflareOptions,
  });
  const url = await mf.ready;
  const started = process.platform === "linux" ? [...workerdChildren()].filter((p) => !before.has(p)) : [];
  const pid = started.length === 1 ? started[0] : null;
  const dispose = async () => {
    await mf.dispose();
    rmSync(persistRoot, { recursive: true, force: true });
    storageDirs.delete(persistRoot);
  };
  return { name, mf, url: url.origin, port: Number(url.port), bundleBytes: script.length, persistRoot, pid, dispose };
}

/** Applies the D1 migrations in migrations/ in order to one D1 binding (default DB), as `wrangler d1 migrations apply` would. */
export async function applyMigrations(mf, binding = "DB") {
  const db = await mf.getD1Database(binding);
  const dir = join(ROOT, "migrations");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
    const statements = unstable_splitSqlQuery(readFileSync(join(dir, file), "utf8"));
    await db.batch(statements.map((s) => db.prepare(s)));
  }
  return db;
}
