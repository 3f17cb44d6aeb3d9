// Types of scripts/lib/test-progress.mjs, for test/test-guard.test.ts.
export type ProgressEvent =
  | { at: number; kind: "files"; files: string[] }
  | { at: number; kind: "start"; file: string }
  | { at: number; kind: "test"; file: string; name?: string }
  | { at: number; kind: "end"; file: string; state: string }
  | { at: number; kind: "run-end"; reason: string };

export interface ProgressState {
  files: number;
  finished: number;
  running: string[];
  unfinished: string[];
  failed: string[];
  /** The last test to finish (its name when the reporter gave it), or null. */
  lastTest: { file: string; name: string | null; at: number } | null;
  runEnded: boolean;
  runPassed: boolean;
  stalled: boolean;
  hungAfterEnd: boolean;
}

export function parseProgress(text: string): ProgressEvent[];
export function progressState(events: ProgressEvent[], now: number, limits: { stallMs: number; exitMs: number }): ProgressState;
