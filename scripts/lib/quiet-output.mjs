// What a passing `npm test` may print (scripts/quiet-test.mjs): the runner's own lines and nothing else.
// Pure, so test/quiet-output.test.ts checks it.
//
// The suite runs with vitest's console interception off (vitest.config.ts disableConsoleIntercept), so
// a line the Worker logs reaches the terminal as a bare line, not as a "stdout | test/x.test.ts > ..."
// block: every line is therefore checked against what the runner prints, and anything else is stray.

/** The lines the runner prints on a passing run (ANSI colours removed). */
const RUNNER = [
  /^\s*$/,
  // npm's header: "> postcall@0.1.0 test", "> node scripts/test.mjs".
  /^> /,
  /^ RUN  v\d/,
  // A file's result, then its slow tests, indented: " ✓  postcall  test/x.test.ts (3 tests) 120ms".
  /^ [✓↓] +\S+ +test\/\S+\.test\.ts /,
  /^ {5}[✓↓] /,
  /^ +(Test Files|Tests|Start at|Duration) {1,2}\S/,
  // test/global/quiet-logs.ts's count of the runtime's own lines it hid.
  /^\d+ lines? of the test runtime's own output hidden /,
  // scripts/test.mjs's guard, when the pool stalled and files ran again.
  /^npm test: /,
];

/** Colours removed. */
export const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, "");

/** The lines of a run's output that the runner did not print. */
export function strayLines(output) {
  return strip(output)
    .split("\n")
    .filter((line) => !RUNNER.some((re) => re.test(line)));
}
