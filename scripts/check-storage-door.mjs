#!/usr/bin/env node
// Part of `npm run lint:deps`: what an import rule cannot see (docs/architecture.md).
//  1. Every D1 and R2 statement lives in src/storage/: a binding used directly (`env.DB.prepare(...)`,
//     `this.env.AUDIO.delete(...)`, `db.batch(...)`) elsewhere fails.
//  2. Only code inside a Durable Object holds its storage: `SqlStorage`, `DurableObjectState`,
//     `DurableObjectStorage` or `ctx.storage` outside src/objects/ fails (the Worker holds stubs).
//  3. One module writes the outbox: INSERT / UPDATE / DELETE on `outbox` or `outbox_blobs` outside
//     src/objects/shared/outbox.ts fails.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("../", import.meta.url).pathname;
const RULES = [
  {
    what: "D1 or R2 used outside src/storage/ (put the statement behind a named function there)",
    test: /\b(?:DB|AUDIO)\s*\.\s*(?:prepare|batch|exec|dump|withSession|put|get|head|delete|list|createMultipartUpload|resumeMultipartUpload)\s*\(|\.\s*(?:prepare|batch)\s*\(\s*[`"']/,
    allowed: (rel) => rel.startsWith("src/storage/"),
  },
  {
    what: "a Durable Object's storage held outside src/objects/ (Worker code reaches an object through its stub)",
    test: /\b(?:SqlStorage|DurableObjectState|DurableObjectStorage)\b|\bctx\.storage\b/,
    allowed: (rel) => rel.startsWith("src/objects/"),
  },
  {
    what: "the outbox written outside src/objects/shared/outbox.ts (its one owner)",
    test: /\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+outbox(?:_blobs)?\b/i,
    allowed: (rel) => rel === "src/objects/shared/outbox.ts",
  },
];

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (path.endsWith(".ts")) yield path;
  }
}

let failed = false;
const sources = [...files(join(root, "src"))].map((path) => ({ rel: relative(root, path), lines: readFileSync(path, "utf8").split("\n") }));
for (const rule of RULES) {
  const found = [];
  for (const { rel, lines } of sources) {
    if (rule.allowed(rel)) continue;
    lines.forEach((line, i) => {
      if (rule.test.test(line)) found.push(`${rel}:${i + 1}: ${line.trim()}`);
    });
  }
  if (found.length > 0) {
    failed = true;
    console.error(`${rule.what}:\n${found.join("\n")}`);
  }
}
if (failed) process.exit(1);
console.log("✔ D1 and R2 only in src/storage/, object storage only in src/objects/, the outbox written only by its module");
