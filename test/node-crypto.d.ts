// The two node:crypto functions test/helpers.ts uses to make tokens synchronously (nodejs_compat);
// the project has no @types/node.
declare module "node:crypto" {
  export function hkdfSync(digest: "sha256", ikm: string, salt: string, info: string, keylen: number): ArrayBuffer;
  export function createHmac(algorithm: "sha256", key: Uint8Array): { update(data: string): { digest(): Uint8Array } };
}
