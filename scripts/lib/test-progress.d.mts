// Types of scripts/lib/test-progress.mjs, for test/test-guard.test.ts.
export type ProgressEvent =
  | { at: number; kind: "files"; files: string[] }
  | { at: number; kind: "start" | "test"; file: string }
  | { at: number; kind: "end"; file: string; state: string }
  | { at: number; kind: "run-end"; reason: string };

export interface ProgressState {
  files: number;
  finished: number;
  running: string[];
  unfinished: string[];
  failed: string[];
  runEnded: boolean;
  runPassed: boolean;
  stalled: boolean;
  hungAfterEnd: boolean;
}

export function parseProgress(text: string): ProgressEvent[];
export function progressState(events: ProgressEvent[], now: number, limits: { stallMs: number; exitMs: number }): ProgressState;
