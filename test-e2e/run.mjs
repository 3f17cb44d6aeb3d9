#!/usr/bin/env node
// `npm run test:e2e`: every browser and first-run test in test-e2e/*.e2e.mjs, one after another (each
// starts its own wrangler dev on a free port, so running them side by side would only fight for the
// machine's two cores). `npm run test:e2e -- console` runs the files whose name contains "console".
// SCREENSHOTS=1 makes the tests that take screenshots write them to docs/screenshots/.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";

const dir = new URL(".", import.meta.url).pathname;
const filters = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".e2e.mjs"))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`No test-e2e/*.e2e.mjs file matches ${JSON.stringify(filters)}.`);
  process.exit(2);
}
const failed = [];
for (const file of files) {
  console.log(`\n=== test-e2e/${file}`);
  const r = spawnSync(process.execPath, [`${dir}${file}`], { stdio: "inherit" });
  if (r.status !== 0) failed.push(`${file} (${r.status === null ? `killed by ${r.signal}` : `exit ${r.status}`})`);
}
if (failed.length) console.log(`\nFailed: ${failed.join(", ")}`);
console.log(`\ne2e: ${files.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length === 0 ? 0 : 1);
