// Types of sample-cli.mjs for the TypeScript test that imports it (test/cli.test.ts).
export function noSecretMessage(given: string | undefined): string;
export function unreachableMessage(base: string, reason: string): string;
