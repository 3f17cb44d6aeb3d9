// What `npm test` (scripts/test.mjs) knows of a vitest run while it runs, from the events
// scripts/test-progress-reporter.mjs writes: which test files were to run, which have finished
// and how, and when anything last happened. Pure, so test/test-guard.test.ts checks it.

/**
 * @typedef {{ at: number, kind: "files", files: string[] } | { at: number, kind: "start", file: string }
 *   | { at: number, kind: "test", file: string, name?: string }
 *   | { at: number, kind: "end", file: string, state: string } | { at: number, kind: "run-end", reason: string }} ProgressEvent
 */

/** The events in a progress file's text (one JSON object a line); a line cut off by a kill is skipped. */
export function parseProgress(text) {
  const events = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      events.push(JSON.parse(line));
    } catch {
      // the last line of a run killed mid-write
    }
  }
  return events;
}

/**
 * Where a run stands at `now`. `stalled` when files are still to finish and nothing (a test, a file
 * starting or ending) has happened for `stallMs`: every test has a 60 s limit inside workerd and each
 * hook 10 s, so that long without a single event means the pool itself has stopped, not a slow test.
 * `hungAfterEnd` when vitest reported the run's end but has not exited `exitMs` later.
 */
export function progressState(events, now, { stallMs, exitMs }) {
  const files = new Set();
  const running = new Set();
  const finished = new Map();
  let last = null;
  let runEnd = null;
  let lastTest = null;
  for (const e of events) {
    last = e.at;
    if (e.kind === "test") lastTest = { file: e.file, name: e.name ?? null, at: e.at };
    if (e.kind === "files") for (const f of e.files) files.add(f);
    else if (e.kind === "start") running.add(e.file);
    else if (e.kind === "end") {
      running.delete(e.file);
      finished.set(e.file, e.state);
    } else if (e.kind === "run-end") runEnd = e;
  }
  const unfinished = [...files].filter((f) => !finished.has(f));
  const failed = [...finished].filter(([, state]) => state === "failed").map(([f]) => f);
  const quietFor = last === null ? 0 : now - last;
  return {
    files: files.size,
    finished: finished.size,
    running: [...running],
    unfinished,
    failed,
    lastTest,
    runEnded: runEnd !== null,
    runPassed: runEnd?.reason === "passed",
    stalled: runEnd === null && last !== null && unfinished.length > 0 && quietFor >= stallMs,
    hungAfterEnd: runEnd !== null && now - runEnd.at >= exitMs,
  };
}
