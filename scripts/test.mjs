#!/usr/bin/env node
// `npm test`: `vitest run` (arguments passed on: `npm test -- test/erase.test.ts`), guarded against the
// test pool stalling. @cloudflare/vitest-pool-workers can stop mid-run with no error and no further
// output, every test file's runtime idle, until something kills it (cloudflare/workers-sdk#15498,
// open; seen here about once in ten runs, and once it cost a whole CI run). A test cannot cause that
// and pass: each has a 60 s limit inside workerd. So when nothing has happened for
// POSTCALL_TEST_STALL_SECONDS (240), this stops that vitest and runs the files that had not finished
// again, once, in a new one. A file that failed is never run again, and a second stall fails the run.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseProgress, progressState } from "./lib/test-progress.mjs";

const root = join(fileURLToPath(import.meta.url), "../..");
const vitest = join(root, "node_modules/vitest/vitest.mjs");
const stallMs = Number(process.env["POSTCALL_TEST_STALL_SECONDS"] ?? "240") * 1000;
const exitMs = 90_000;
const say = (line) => process.stderr.write(`\nnpm test: ${line}\n`);
const names = (files) => files.map((f) => relative(root, f)).join(", ");

let child = null;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    if (child) killGroup(child);
    process.exit(130);
  });
}

function killGroup(proc) {
  try {
    process.kill(-proc.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** One `vitest run`, watched: resolves to its exit code, or to what the watch saw when it had to stop it. */
function run(args) {
  const dir = mkdtempSync(join(tmpdir(), "postcall-test-"));
  const progress = join(dir, "progress.jsonl");
  // Its own process group, so that a stop takes workerd and every helper it started with it.
  child = spawn(process.execPath, [vitest, "run", ...args], {
    cwd: root,
    detached: true,
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, POSTCALL_TEST_PROGRESS: progress },
  });
  const proc = child;
  return new Promise((resolve) => {
    const read = () => {
      let text = "";
      try {
        text = readFileSync(progress, "utf8");
      } catch {
        // nothing written yet
      }
      return progressState(parseProgress(text), Date.now(), { stallMs, exitMs });
    };
    const watch = setInterval(() => {
      const state = read();
      if (!state.stalled && !state.hungAfterEnd) return;
      clearInterval(watch);
      proc.removeAllListeners("exit");
      killGroup(proc);
      rmSync(dir, { recursive: true, force: true });
      resolve({ code: null, state });
    }, 5_000);
    proc.on("exit", (code, signal) => {
      clearInterval(watch);
      const state = read();
      rmSync(dir, { recursive: true, force: true });
      resolve({ code: code ?? (signal ? 1 : 0), state });
    });
  });
}

/** The run's options without its file filters, for the second run (which names its files): `--project x` keeps its value. */
function optionsOf(args) {
  const valued = new Set(["--project", "--config", "-c", "-t", "--testNamePattern", "--shard", "--reporter", "--maxWorkers"]);
  const kept = [];
  for (let i = 0; i < args.length; i++) {
    if (!args[i].startsWith("-")) continue;
    kept.push(args[i]);
    if (valued.has(args[i]) && i + 1 < args.length) kept.push(args[++i]);
  }
  return kept;
}

const options = optionsOf(process.argv.slice(2));
let result = await run(process.argv.slice(2));
if (result.code === null && result.state.hungAfterEnd) {
  say(`vitest reported the end of the run but had not exited ${exitMs / 1000} s later; stopped it (cloudflare/workers-sdk#15498).`);
  process.exit(result.state.runPassed ? 0 : 1);
}
if (result.code === null) {
  const { running, unfinished, failed, finished, files } = result.state;
  say(
    `no test finished for ${stallMs / 1000} s: the test pool stalled (cloudflare/workers-sdk#15498), with ` +
      `${running.length ? names(running) : "no file"} running. ${finished} of ${files} files had finished.`,
  );
  if (failed.length > 0) {
    say(`not running the rest again: ${names(failed)} failed.`);
    process.exit(1);
  }
  say(`running the ${unfinished.length} files that had not finished again, in a new vitest: ${names(unfinished)}`);
  result = await run([...options, ...unfinished]);
  if (result.code === null) {
    say(`the second run stalled too (${result.state.running.length ? names(result.state.running) : "no file"} running): failing.`);
    process.exit(1);
  }
  const first = finished > 0 ? `the ${finished} files that finished in the first run had passed; ` : "";
  say(`${first}the second run, of the other ${unfinished.length}, exited with ${result.code}.`);
}
process.exit(result.code);
