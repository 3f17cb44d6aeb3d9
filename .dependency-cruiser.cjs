/**
 * The layers of src/ (docs/architecture.md), each importing only the ones below it:
 *
 *   index.ts                       wiring: routes, the Durable Object export, the cron
 *   webhooks/  api/  forwarding/   the edges: two HTTP, one Queue consumer (never each other)
 *   memory/                        the UserMemory Durable Object and its jobs
 *   storage/                       every D1 and R2 statement
 *   records/                       payload records, identity, limits, key layout (pure)
 *   lib/                           errors, config, env, bytes, time, HTTP helpers
 *
 * `npm run lint:deps` fails on a cycle, an upward import, an import between the two edges, or a
 * file that no one imports. Type-only imports count: a type is a dependency too.
 */
const layer = (name, below) => ({
  name: `${name}-imports-only-below`,
  comment: `${name}/ may import only from: ${below.join(", ")}`,
  severity: "error",
  from: { path: `^src/${name}/` },
  to: { path: "^src/", pathNot: [`^src/${name}/`, ...below.map((b) => `^src/${b}/`)] },
});

module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      comment: "A cycle makes two modules one: no import cycles anywhere in src/.",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    layer("webhooks", ["memory", "storage", "records", "lib"]),
    layer("api", ["memory", "storage", "records", "lib"]),
    layer("forwarding", ["storage", "records", "lib"]),
    layer("memory", ["storage", "records", "lib"]),
    layer("storage", ["records", "lib"]),
    layer("records", ["lib"]),
    layer("lib", []),
    {
      name: "no-orphans",
      comment: "A source file nothing imports is dead code (or a missing wire).",
      severity: "error",
      from: { orphan: true, path: "^src/", pathNot: "^src/index\\.ts$|\\.d\\.ts$" },
      to: {},
    },
    {
      name: "no-unresolvable",
      severity: "error",
      from: { path: "^src/" },
      to: { couldNotResolve: true, pathNot: "^cloudflare:" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default", "types"] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
