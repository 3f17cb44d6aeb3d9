/**
 * What a passing `npm test` may print (scripts/lib/quiet-output.mjs, used by scripts/quiet-test.mjs in
 * CI): the runner's own lines only. With vitest's console interception off, a line the Worker logs is
 * a bare line, so the check knows the runner's lines and calls everything else stray.
 */
import { describe, expect, it } from "vitest";
import { strayLines } from "../scripts/lib/quiet-output.mjs";

const passing = [
  "",
  "> postcall@0.1.0 test",
  "> node scripts/test.mjs",
  "",
  "\x1b[1m\x1b[46m RUN \x1b[49m\x1b[22m \x1b[36mv4.1.12 \x1b[39m\x1b[90m/work/main\x1b[39m",
  " \x1b[32m✓\x1b[39m \x1b[30m\x1b[43m forwarding \x1b[49m\x1b[39m test/forwarding/load.test.ts \x1b[2m(\x1b[22m\x1b[2m1 test\x1b[22m\x1b[2m)\x1b[22m\x1b[33m 3143\x1b[2mms\x1b[22m\x1b[39m",
  "     \x1b[33m\x1b[2m✓\x1b[22m\x1b[39m reconciles 120 events to two destinations exactly \x1b[33m 3141\x1b[2mms\x1b[22m\x1b[39m",
  " ✓  postcall  test/cursor.test.ts (23 tests) 10ms",
  " ↓  postcall  test/migration-0004.test.ts (8 tests | 8 skipped)",
  " Test Files  83 passed | 1 skipped (84)",
  "      Tests  1060 passed | 8 skipped (1068)",
  "   Start at  19:45:33",
  "   Duration  329.75s (transform 3.61s, setup 88.35s, import 4.74s, tests 176.85s, environment 13ms)",
  "115 lines of the test runtime's own output hidden (workerd's notes, and its reports of faults the tests cause on purpose); SHOW_EXPECTED_LOGS=1 shows them.",
  "npm test: running the 3 files that had not finished again, in a new vitest: test/a.test.ts",
].join("\n");

describe("a passing npm test's output", () => {
  it("is the runner's own lines, colours or not", () => {
    expect(strayLines(passing)).toEqual([]);
  });

  it("calls a line the Worker logged, a test's output block, and a runtime or Node warning stray", () => {
    const stray = [
      "outbox item 1 failed (attempt 1): destination down",
      "stderr | test/outbox-payload.test.ts > outbox payloads > a failed delivery",
      "console warning: something",
      "(node:123) ExperimentalWarning: something",
      "workerd/io/worker.c++:1234: warning: something",
    ];
    expect(strayLines([passing, ...stray].join("\n"))).toEqual(stray);
  });
});
