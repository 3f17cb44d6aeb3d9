/**
 * The layers of src/ (docs/architecture.md), each importing only the ones below it:
 *
 *   index.ts                          wiring: routes, the Durable Object classes, the cron, the queue
 *   webhooks/ api/ forwarding/ cron/  the edges, in the Worker (never each other)
 *   objects/                          code that runs inside a Durable Object, one folder per class
 *   memory/                           the stub side: names -> typed stubs, MEMORY_SCOPE, arrival, context
 *   elevenlabs/ storage/              ElevenLabs' API; every D1 and R2 statement
 *   records/                          payload records, identity, object names, limits, key layout (pure)
 *   lib/                              errors, config, env, bytes, time, text, HTTP helpers
 *
 * The object/Worker boundary: the edges may not import objects/ at all (they reach an object only
 * through its typed stub, src/memory/objects.ts); memory/ may not import objects/ (types come
 * through the generated bindings); a class's folder imports only itself and objects/shared/.
 * `npm run lint:deps` fails on a cycle, an upward import, a crossed boundary, or a file no one
 * imports. Type-only imports count: a type is a dependency too.
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
    layer("webhooks", ["memory", "elevenlabs", "storage", "records", "lib"]),
    layer("api", ["memory", "elevenlabs", "storage", "records", "lib"]),
    layer("forwarding", ["storage", "records", "lib"]),
    layer("cron", ["memory", "storage", "records", "lib"]),
    layer("objects", ["memory", "elevenlabs", "storage", "records", "lib"]),
    layer("memory", ["elevenlabs", "storage", "records", "lib"]),
    layer("elevenlabs", ["records", "lib"]),
    layer("storage", ["records", "lib"]),
    layer("records", ["lib"]),
    layer("lib", []),
    {
      name: "one-class-per-folder",
      comment: "Code inside one Durable Object class imports only its own folder and objects/shared/ (another class is reached by its stub).",
      severity: "error",
      from: { path: "^src/objects/([^/]+)/" },
      to: { path: "^src/objects/", pathNot: ["^src/objects/$1/", "^src/objects/shared/"] },
    },
    {
      name: "shared-object-code-knows-no-class",
      comment: "objects/shared/ serves every class: it imports no class's folder.",
      severity: "error",
      from: { path: "^src/objects/shared/" },
      to: { path: "^src/objects/(?!shared/)" },
    },
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
