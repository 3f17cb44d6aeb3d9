/**
 * Keeps `npm test` quiet about what the suite causes on purpose, and loud about everything else.
 *
 * Two sources of expected noise, each matched narrowly:
 * - The test runtime itself: workerd prints "WebSocket peer disconnected" when the pool closes a test
 *   file's runner (the pool already hides its siblings, "WebSocket was aborted" and "operation
 *   canceled"), wrangler says "Using secrets defined in .dev.vars" once per file after `npm start`
 *   created that file (the tests' own bindings in vitest.config.ts override it), and workerd warns
 *   about the non-ASCII signature header test/hostile.test.ts sends on purpose; and the runtime's own
 *   report of two faults tests cause (a broken Durable Object call, a client leaving mid-upload). These reach the
 *   terminal as raw writes from the runtime's stdio, filtered by `setup` below.
 * - Faults the tests inject (test/faults.test.ts, test/faults.ts): a simulated D1 or R2 outage, a
 *   whole outbox run failing, a Durable Object restarted mid-call, a poisoned outbox item. The Worker
 *   logs each, as it must in production. `expectedConsoleLog` hides those logs, and only when they
 *   come from a fault-injection test file and carry the injected fault's own words.
 *
 * The count of hidden lines is printed at the end; SHOW_EXPECTED_LOGS=1 shows them all.
 */

// This file runs in vitest's Node process (config and globalSetup), not in workerd: the little of Node
// it uses is declared here, since the project's types are the Workers ones.
interface WritableOut {
  write(chunk: unknown, ...rest: unknown[]): boolean;
}
declare const process: { env: Record<string, string | undefined>; stdout: WritableOut; stderr: WritableOut };

/** Lines of the runtime's own output that every run prints and that report nothing about the code. */
const RUNTIME_NOISE: RegExp[] = [
  /disconnected: WebSocket peer disconnected/,
  /^Using secrets defined in \.dev\.vars$/,
  /A header value for "ElevenLabs-Signature" contains non-ASCII characters/,
  /jsg\.Error: test: restart the object/,
  // The Durable Object call test/faults.test.ts breaks on purpose, as the runtime reports it.
  /Uncaught \(in promise\); stack = Error: Network connection lost\./,
  // A client that goes away mid-upload (test/audio.test.ts does it on purpose).
  /disconnected: read end of pipe was aborted/,
];

/** Test files that inject faults, and the words of the faults they inject. */
const FAULT_FILES = /(^|\/)test\/faults[^/]*\.test\.ts$/;
const INJECTED: RegExp[] = [
  /simulated (outage|lost response after commit|failure of the whole run)/,
  /test: restart the object/,
  // Thrown by the test that breaks a Durable Object call (test/faults.test.ts).
  /Network connection lost\./,
  // The deliberately undeliverable item of "an outbox item that can never be delivered".
  /^outbox item \d+ (failed \(attempt \d+\)|is stuck after \d+ attempts; still retrying): Expected property name/,
];

const show = () => process.env["SHOW_EXPECTED_LOGS"] === "1";
const counter = () => ((globalThis as { __postcallQuietLogs?: { hidden: number } }).__postcallQuietLogs ??= { hidden: 0 });

/** vitest's onConsoleLog: false hides the log. */
export function expectedConsoleLog(log: string, type: "stdout" | "stderr", entity: { moduleId?: string; module?: { moduleId: string } } | undefined): boolean | void {
  if (show() || type !== "stderr") return;
  const file = entity?.moduleId ?? entity?.module?.moduleId ?? "";
  if (!FAULT_FILES.test(file)) return;
  // vitest may hand several console calls over as one log: hide it only if every line is expected
  // (an injected fault's message, or a stack frame under one).
  const lines = log.split("\n").filter((l) => l.trim() !== "");
  if (!lines.every((l) => INJECTED.some((re) => re.test(l)) || /^\s+at /.test(l))) return;
  counter().hidden += lines.length;
  return false;
}

/** globalSetup: filters the runtime's expected lines out of the terminal, and reports how many were hidden. */
export function setup(): () => void {
  if (show()) return () => {};
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream);
    let dropStack = false;
    stream.write = (chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) return write(chunk, ...rest);
      const text = typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
      const lines = text.split("\n");
      const kept = lines.filter((line: string) => {
        const plain = line.replace(/\x1b\[[0-9;]*m/g, "");
        // workerd follows an uncaught exception with a line of addresses: it goes with the line it belongs to.
        if (dropStack && /^\s*stack: /.test(plain)) return (dropStack = false);
        dropStack = false;
        if (!RUNTIME_NOISE.some((re) => re.test(plain))) return true;
        counter().hidden++;
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
  // The filter stays in place after teardown: the runtime's last lines come after it.
  return () => {
    const { hidden } = counter();
    if (hidden > 0) process.stdout.write(`\n${hidden} expected log lines hidden (the test runtime's own, and faults the tests inject); SHOW_EXPECTED_LOGS=1 shows them.\n`);
  };
}
