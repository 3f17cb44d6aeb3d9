/**
 * Keeps `npm test` free of the test runtime's own chatter, and loud about everything else.
 *
 * What the Worker logs is not filtered here: a test that causes a failure on purpose takes the
 * Worker's log lines about it and asserts them (test/logs.ts `expectLogs`), so they never reach the
 * terminal, and any other line does.
 *
 * What is filtered is what workerd itself (not our code) writes to its stdio, line by line, each
 * matched narrowly: its note when the pool closes a test file's runner, wrangler's note about
 * `.dev.vars`, a warning about the non-ASCII header test/hostile.test.ts sends on purpose, its alarm
 * bookkeeping notes, and its own report (with native or JS stack
 * lines) of the faults tests cause on purpose: a Durable Object restarted or its call broken, an
 * injected outage thrown through a Durable Object call, a client or an API stand-in leaving
 * mid-stream, a request to a closed port. The count is printed once at the end; SHOW_EXPECTED_LOGS=1
 * shows them all.
 */

// This file runs in vitest's Node process (config and globalSetup), not in workerd: the little of Node
// it uses is declared here, since the project's types are the Workers ones.
interface WritableOut {
  write(chunk: unknown, ...rest: unknown[]): boolean;
}
declare const process: { env: Record<string, string | undefined>; stdout: WritableOut; stderr: WritableOut };

/** Lines of the runtime's own output that report nothing about the code under test. */
const RUNTIME_NOISE: RegExp[] = [
  /disconnected: WebSocket peer disconnected/,
  /^Using secrets defined in \.dev\.vars$/,
  /A header value for "ElevenLabs-Signature" contains non-ASCII characters/,
  // workerd's alarm bookkeeping ("alarm overdue, running despite AlarmManager mismatch", "alarm handler
  // canceled with requestScheduledAlarm"): notes marked NOSENTRY, not faults.
  /^NOSENTRY SQLite alarm /,
  /jsg\.Error: test: restart the object/,
  // A Durable Object call test/faults.test.ts breaks on purpose, and a request to a closed port
  // (test/elevenlabs-api.test.ts), as the runtime reports them.
  /Uncaught \(in promise\); stack = Error: Network connection lost\./,
  /^uncaught exception; exception = .*disconnected: jsg\.Error: Network connection lost\.$/,
  /^exception = .*disconnected: connect\(\): Connection refused$/,
  // An outage a test injects, thrown through a Durable Object call: the runtime reports it as well as
  // the caller, whose log the test asserts.
  /^uncaught exception; source = Uncaught \(in promise\); stack = Error: .*simulated outage$/,
  // A client that goes away mid-upload (test/audio.test.ts) and an API stand-in that breaks off a
  // download (test/audio-backfill.test.ts), on purpose.
  /disconnected: read end of pipe was aborted/,
  /^exception = kj\/async-io\.c\+\+:\d+: disconnected: stream disconnected prematurely$/,
];

/** What follows a reported exception: workerd's line of native addresses, or the JS stack's frames. */
const STACK_LINE = /^\s*stack: |^\s+at /;

const show = () => process.env["SHOW_EXPECTED_LOGS"] === "1";
type State = { hidden: number; projects: number };
const state = () => ((globalThis as { __postcallQuietLogs?: State }).__postcallQuietLogs ??= { hidden: 0, projects: 0 });

/** globalSetup (once per project): filters the runtime's lines out of the terminal, and reports how many were hidden. */
export function setup(): () => void {
  if (show()) return () => {};
  const s = state();
  if (s.projects++ === 0) {
    for (const stream of [process.stdout, process.stderr]) {
      const write = stream.write.bind(stream);
      let dropStack = false;
      stream.write = (chunk: unknown, ...rest: unknown[]) => {
        if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) return write(chunk, ...rest);
        const text = typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
        const lines = text.split("\n");
        const kept = lines.filter((line: string) => {
          const plain = line.replace(/\x1b\[[0-9;]*m/g, "");
          // A hidden exception's stack goes with it.
          if (dropStack && STACK_LINE.test(plain)) {
            s.hidden++;
            return false;
          }
          dropStack = false;
          if (!RUNTIME_NOISE.some((re) => re.test(plain))) return true;
          s.hidden++;
          dropStack = true;
          return false;
        });
        if (kept.length === lines.length) return write(chunk, ...rest);
        const out = kept.join("\n");
        if (out.trim() === "") {
          const cb = rest.find((r) => typeof r === "function") as (() => void) | undefined;
          cb?.();
          return true;
        }
        return write(out, ...rest);
      };
    }
  }
  // The filter stays in place after teardown: the runtime's last lines come after it. The count is
  // printed once, when the last project is done.
  return () => {
    if (--s.projects > 0) return;
    if (s.hidden > 0) process.stdout.write(`\n${s.hidden} lines of the test runtime's own output hidden (workerd's notes, and its reports of faults the tests cause on purpose); SHOW_EXPECTED_LOGS=1 shows them.\n`);
  };
}
