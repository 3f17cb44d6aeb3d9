#!/usr/bin/env node
// `npm test`: `vitest run` (arguments passed on: `npm test -- test/erase.test.ts`), guarded against the
// test pool stalling. @cloudflare/vitest-pool-workers can stop mid-run with no error and no further
// output, until something kills it (cloudflare/workers-sdk#15498, open; seen here about once in ten
// runs, and it has cost whole CI runs). A test cannot cause that and pass: each has a 60 s limit
// inside workerd. So when nothing has happened for POSTCALL_TEST_STALL_SECONDS (240), this says what
// it saw (the last test to finish, how busy each of the run's processes was), stops that vitest and
// runs the files that had not finished again in a new one. If that one stalls too, each file that was
// running then is run alone, and the rest after it. A file that failed is never run again, and a file
// that stalls even alone fails the run.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
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

/** CPU seconds used so far by each process in `pgid`'s group, from /proc (Linux; empty elsewhere). */
function groupCpu(pgid) {
  const cpu = new Map();
  let pids = [];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return cpu;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // After the name: state (0), ppid (1), pgrp (2), ..., utime (11), stime (12), in clock ticks (100 a second).
      if (Number(fields[2]) === pgid) cpu.set(pid, { name, seconds: (Number(fields[11]) + Number(fields[12])) / 100 });
    } catch {
      // gone meanwhile
    }
  }
  return cpu;
}

/** Which of the stalled run's processes are busy: a spinning workerd points at a loop in the code, an idle one at the pool. */
async function describeStall(proc, state) {
  const last = state.lastTest;
  const lines = [];
  lines.push(last ? `the last test to finish, ${Math.round((Date.now() - last.at) / 1000)} s ago: ${relative(root, last.file)} > ${last.name ?? "(no name)"}` : "no test had finished.");
  const before = groupCpu(proc.pid);
  await new Promise((r) => setTimeout(r, 3_000));
  const after = groupCpu(proc.pid);
  const busy = [...after].map(([pid, { name, seconds }]) => `${name} (pid ${pid}): ${(seconds - (before.get(pid)?.seconds ?? seconds)).toFixed(2)} s of CPU in 3 s`);
  if (busy.length) lines.push(`the run's processes: ${busy.join("; ")}`);
  return lines;
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
    const watch = setInterval(async () => {
      const state = read();
      if (!state.stalled && !state.hungAfterEnd) return;
      clearInterval(watch);
      proc.removeAllListeners("exit");
      const details = state.stalled ? await describeStall(proc, state) : [];
      killGroup(proc);
      rmSync(dir, { recursive: true, force: true });
      resolve({ code: null, state, details });
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
const list = (files) => (files.length ? names(files) : "no file");

/** Runs `files` (or the arguments as given, for null) and says how it went; exits at once when the run cannot go on. */
async function attempt(files, what) {
  const result = await run(files === null ? process.argv.slice(2) : [...options, ...files]);
  if (result.code === null && result.state.hungAfterEnd) {
    say(`vitest reported the end of ${what} but had not exited ${exitMs / 1000} s later; stopped it (cloudflare/workers-sdk#15498).`);
    return { code: result.state.runPassed ? 0 : 1, stalled: null };
  }
  if (result.code !== null) return { code: result.code, stalled: null };
  const { running, unfinished, failed, finished, files: total } = result.state;
  say(
    `no test finished for ${stallMs / 1000} s in ${what}: the run stalled (a busy workerd below means a loop in the code, an idle one the pool: cloudflare/workers-sdk#15498), with ` +
      `${list(running)} running. ${finished} of ${total} files had finished.`,
  );
  for (const line of result.details) say(line);
  if (failed.length > 0) {
    say(`not running the rest again: ${names(failed)} failed.`);
    process.exit(1);
  }
  return { code: null, stalled: { running, unfinished } };
}

let worst = 0;
const first = await attempt(null, "the run");
if (first.stalled) {
  say(`running the ${first.stalled.unfinished.length} files that had not finished again, in a new vitest: ${names(first.stalled.unfinished)}`);
  const second = await attempt(first.stalled.unfinished, "the second run");
  if (second.stalled) {
    // Stalled twice: run each file that was running then alone (a file that stalls even alone fails), then the rest.
    const { running, unfinished } = second.stalled;
    for (const file of running) {
      say(`running ${relative(root, file)} alone.`);
      const alone = await attempt([file], `${relative(root, file)} alone`);
      if (alone.stalled) {
        say(`${relative(root, file)} stalled even alone: failing.`);
        process.exit(1);
      }
      worst = Math.max(worst, alone.code);
    }
    const rest = unfinished.filter((f) => !running.includes(f));
    if (rest.length > 0) {
      say(`running the other ${rest.length} files that had not finished: ${names(rest)}`);
      const last = await attempt(rest, "the last run");
      if (last.stalled) {
        say(`the last run stalled too (${list(last.stalled.running)} running): failing.`);
        process.exit(1);
      }
      worst = Math.max(worst, last.code);
    }
  } else worst = Math.max(worst, second.code);
  say(`every file has now run to its end; the files that finished before a stall had passed. Exit ${worst === 0 ? 0 : 1}.`);
} else worst = first.code;
process.exit(worst === 0 ? 0 : 1);
