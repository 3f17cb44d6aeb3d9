/**
 * npm test's guard against a stalled test pool (scripts/test.mjs, scripts/lib/test-progress.mjs): it
 * stops a run only when nothing at all has happened for the stall time with files still to finish, names
 * the files to run again (never one that finished), and knows a failure from a stall.
 */
import { describe, expect, it } from "vitest";
import { type ProgressEvent, parseProgress, progressState } from "../scripts/lib/test-progress.mjs";

const limits = { stallMs: 240_000, exitMs: 90_000 };
const files = { at: 0, kind: "files" as const, files: ["/p/test/a.test.ts", "/p/test/b.test.ts", "/p/test/c.test.ts"] };

describe("npm test's stall guard", () => {
  it("waits while tests keep finishing, however long the run", () => {
    const events: ProgressEvent[] = [files, { at: 1_000, kind: "start", file: "/p/test/a.test.ts" }];
    for (let t = 60_000; t <= 3_600_000; t += 60_000) events.push({ at: t, kind: "test", file: "/p/test/a.test.ts" });
    expect(progressState(events, 3_600_000 + 239_999, limits).stalled).toBe(false);
    expect(progressState(events, 3_600_000 + 240_000, limits).stalled).toBe(true);
  });

  it("names the files still to run, those running and those not started, and never one that finished", () => {
    const events: ProgressEvent[] = [
      files,
      { at: 1_000, kind: "start", file: "/p/test/a.test.ts" },
      { at: 2_000, kind: "start", file: "/p/test/b.test.ts" },
      { at: 3_000, kind: "end", file: "/p/test/a.test.ts", state: "passed" },
    ];
    const state = progressState(events, 3_000 + 240_000, limits);
    expect(state).toMatchObject({ stalled: true, finished: 1, files: 3, running: ["/p/test/b.test.ts"], failed: [] });
    expect(state.unfinished).toEqual(["/p/test/b.test.ts", "/p/test/c.test.ts"]);
  });

  it("reports a file that failed, so that the run fails instead of trying again", () => {
    const events: ProgressEvent[] = [files, { at: 1_000, kind: "start", file: "/p/test/a.test.ts" }, { at: 5_000, kind: "end", file: "/p/test/a.test.ts", state: "failed" }];
    expect(progressState(events, 5_000 + 240_000, limits)).toMatchObject({ stalled: true, failed: ["/p/test/a.test.ts"] });
  });

  it("is never stalled before the run has begun, nor once every file has finished", () => {
    expect(progressState([], 10_000_000, limits).stalled).toBe(false);
    const done: ProgressEvent[] = [files, ...files.files.map((file, i) => ({ at: 1_000 + i, kind: "end" as const, file, state: "passed" }))];
    expect(progressState(done, 10_000_000, limits)).toMatchObject({ stalled: false, unfinished: [] });
  });

  it("stops a vitest that reported the end of its run and did not exit, keeping the run's verdict", () => {
    const ended: ProgressEvent[] = [files, { at: 9_000, kind: "run-end", reason: "passed" }];
    expect(progressState(ended, 9_000 + 89_999, limits).hungAfterEnd).toBe(false);
    expect(progressState(ended, 9_000 + 90_000, limits)).toMatchObject({ hungAfterEnd: true, runPassed: true, stalled: false });
    expect(progressState([files, { at: 9_000, kind: "run-end" as const, reason: "failed" }], 200_000, limits).runPassed).toBe(false);
  });

  it("names the last test to finish, for the stall's report", () => {
    const events: ProgressEvent[] = [
      files,
      { at: 1_000, kind: "start", file: "/p/test/a.test.ts" },
      { at: 2_000, kind: "test", file: "/p/test/a.test.ts", name: "a > first" },
      { at: 3_000, kind: "test", file: "/p/test/a.test.ts", name: "a > second" },
      { at: 4_000, kind: "start", file: "/p/test/b.test.ts" },
    ];
    expect(progressState(events, 4_000 + 240_000, limits).lastTest).toEqual({ file: "/p/test/a.test.ts", name: "a > second", at: 3_000 });
    expect(progressState([files], 1, limits).lastTest).toBeNull();
  });

  it("reads a progress file whose last line a kill cut short", () => {
    const text = `${JSON.stringify(files)}\n${JSON.stringify({ at: 5, kind: "start", file: "/p/test/a.test.ts" })}\n{"at":7,"kind":"en`;
    expect(parseProgress(text)).toHaveLength(2);
  });
});
