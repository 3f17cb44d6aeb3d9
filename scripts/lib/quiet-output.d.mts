// Types of scripts/lib/quiet-output.mjs, for test/quiet-output.test.ts.
export function strip(s: string): string;
export function strayLines(output: string): string[];
