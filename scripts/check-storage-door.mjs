#!/usr/bin/env node
// Part of `npm run lint:deps`: every D1 and R2 statement lives in src/storage/ (docs/architecture.md).
// dependency-cruiser checks imports; this checks what an import rule cannot see, a binding used
// directly: `env.DB.prepare(...)`, `this.env.AUDIO.delete(...)`, `db.batch(...)` outside src/storage/.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("../", import.meta.url).pathname;
const CALL = /\b(?:DB|AUDIO)\s*\.\s*(?:prepare|batch|exec|dump|withSession|put|get|head|delete|list|createMultipartUpload|resumeMultipartUpload)\s*\(|\.\s*(?:prepare|batch)\s*\(\s*[`"']/;

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (path.endsWith(".ts")) yield path;
  }
}

const found = [];
for (const path of files(join(root, "src"))) {
  const rel = relative(root, path);
  if (rel.startsWith("src/storage/")) continue;
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((line, i) => {
      if (CALL.test(line)) found.push(`${rel}:${i + 1}: ${line.trim()}`);
    });
}
if (found.length > 0) {
  console.error(`D1 or R2 used outside src/storage/ (put the statement behind a named function there):\n${found.join("\n")}`);
  process.exit(1);
}
console.log("✔ every D1 and R2 statement is in src/storage/");
