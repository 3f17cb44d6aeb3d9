/**
 * Logs a test expects: the Worker logs every failure it handles (an outbox attempt that failed, a
 * destination that refused, a source the health page could not read), as it must in production. A
 * test that causes one on purpose takes those lines here, asserts them, and keeps them out of the
 * terminal, so a passing `npm test` prints the runner's summary and no line that reads as a failure.
 *
 * Only lines matching one of the test's patterns are taken; any other line is printed as usual, so an
 * unexpected error stays loud. Each pattern must have matched by the end of the test, or the test
 * fails: the failure the test causes is logged for the operator, in those words. The Worker, its Durable Objects and its queue consumer run in the test's
 * isolate, so their `console` is the one spied on here. Restored when the test finishes.
 */
import { onTestFinished, vi } from "vitest";

const LEVELS = ["log", "info", "warn", "error"] as const;
type Level = (typeof LEVELS)[number];

export interface ExpectedLogs {
  /** Every line taken, in order. */
  readonly lines: { level: Level; text: string }[];
  /** The texts of the lines taken that match `re`. */
  matching(re: RegExp): string[];
}

/** A console call's arguments as one line of text, as the runtime would print them (an Error as its message). */
function textOf(args: unknown[]): string {
  return args.map((a) => (typeof a === "string" ? a : a instanceof Error ? `${a.name}: ${a.message}` : JSON.stringify(a))).join(" ");
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** An outbox item's failed delivery, as src/objects/shared/outbox.ts logs it (attempts, then "stuck"). */
export const outboxFailure = (error: string | RegExp): RegExp =>
  new RegExp(`^outbox item \\d+ (failed \\(attempt \\d+\\)|is stuck after \\d+ attempts; still retrying): ${typeof error === "string" ? escape(error) : error.source}`);

export function expectLogs(...expected: RegExp[]): ExpectedLogs {
  const lines: { level: Level; text: string }[] = [];
  onTestFinished(() => {
    const missing = expected.filter((re) => !lines.some((l) => re.test(l.text)));
    if (missing.length > 0) throw new Error(`expected log lines never came: ${missing.map(String).join(", ")}`);
  });
  for (const level of LEVELS) {
    const original = console[level].bind(console);
    const spy = vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      const text = textOf(args);
      if (expected.some((re) => re.test(text))) lines.push({ level, text });
      else original(...args);
    });
    onTestFinished(() => spy.mockRestore());
  }
  return { lines, matching: (re) => lines.filter((l) => re.test(l.text)).map((l) => l.text) };
}
