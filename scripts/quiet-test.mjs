#!/usr/bin/env node
// `node scripts/quiet-test.mjs`: runs `npm test` (the README's test command) as it is, output streamed,
// and then fails if a passing run printed anything but the runner's own lines (scripts/lib/quiet-output.mjs):
// a line the Worker or a test logged, a workerd warning, a Node warning. A line the Worker logs on
// purpose belongs to the test that causes it (test/logs.ts `expectLogs` asserts and takes it); anything
// else reads as a failure to whoever runs the suite (issue 24).
//
//   node scripts/quiet-test.mjs                 runs npm test (with this environment: POSTCALL_TEST_SHARDS=3 too)
//   node scripts/quiet-test.mjs --log FILE      checks the saved output of a run instead
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { strayLines } from "./lib/quiet-output.mjs";

function report(output, code) {
  const stray = strayLines(output);
  if (code !== 0) process.exit(code);
  if (stray.length > 0) {
    console.error(`\nnpm test passed but printed ${stray.length} line(s) besides the runner's own:`);
    for (const line of stray.slice(0, 20)) console.error(`  ${line}`);
    console.error("Assert a line the test causes with test/logs.ts expectLogs, or stop the code from printing it.");
    process.exit(1);
  }
}

const at = process.argv.indexOf("--log");
if (at > 0) {
  report(readFileSync(process.argv[at + 1], "utf8"), 0);
  console.log("quiet: the run printed only the runner's summary.");
} else {
  const child = spawn("npm", ["test"], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  for (const stream of [child.stdout, child.stderr]) {
    stream.on("data", (d) => {
      output += d;
      (stream === child.stdout ? process.stdout : process.stderr).write(d);
    });
  }
  child.on("close", (code) => report(output, code ?? 1));
}
