// Types of migrations.mjs for the TypeScript test that imports it (test/cli.test.ts).
export function migrationSummary(output: string): string | null;
