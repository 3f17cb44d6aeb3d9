/**
 * Where the streaming JSON scanner (src/webhooks/json-scan.ts) is in the document, as far as finding
 * one path of object keys needs: the open containers, and the current key of the objects at depth 1
 * and 2, decoded. Pure.
 */
export const OBJ = 1;
export const ARR = 2;

/** Keys longer than this cannot be a path segment we look for; they are not collected. */
const MAX_KEY_CHARS = 64;

export class KeyPath {
  /** Container kinds, innermost last. Explicit, so nesting depth costs memory, never stack. */
  private readonly stack: number[] = [];
  /** Decoded key being read (depth 1 or 2), or null once it is too long to matter. */
  private keyChars: string | null = null;
  /** Current key of the depth-1 and depth-2 objects. */
  private key1: string | null = null;
  private key2: string | null = null;

  /** @param path one or two object keys from the top level. */
  constructor(private readonly path: readonly [string] | readonly [string, string]) {}

  get depth(): number {
    return this.stack.length;
  }

  /** The innermost open container (OBJ or ARR), or undefined at the top level. */
  top(): number | undefined {
    return this.stack[this.stack.length - 1];
  }

  open(kind: typeof OBJ | typeof ARR): void {
    this.stack.push(kind);
    if (kind !== OBJ) return;
    if (this.stack.length === 1) this.key1 = null;
    else if (this.stack.length === 2) this.key2 = null;
  }

  pop(): void {
    this.stack.pop();
  }

  /** A key begins. Returns whether its characters must be collected (it is at a depth the path has). */
  startKey(): boolean {
    this.keyChars = "";
    return this.stack.length <= this.path.length;
  }

  /** A run of the key's raw bytes. */
  keyBytes(buf: Uint8Array, start: number, end: number): void {
    if (this.keyChars === null) return;
    if (end - start + this.keyChars.length > MAX_KEY_CHARS) {
      this.keyChars = null;
      return;
    }
    // Path keys are ASCII; a non-ASCII byte makes the key one we never look for.
    let s = "";
    for (let k = start; k < end; k++) {
      const b = buf[k]!;
      if (b >= 0x80) {
        this.keyChars = null;
        return;
      }
      s += String.fromCharCode(b);
    }
    this.keyChars += s;
  }

  /** One escaped character of the key, decoded. */
  keyChar(ch: string): void {
    if (this.keyChars === null) return;
    this.keyChars = this.keyChars.length >= MAX_KEY_CHARS ? null : this.keyChars + ch;
  }

  /** The key ended; `collected` is what `startKey` answered. */
  endKey(collected: boolean): void {
    const depth = this.stack.length;
    const key = collected ? this.keyChars : null;
    if (depth === 1) this.key1 = key;
    else if (depth === 2) this.key2 = key;
  }

  /** Whether a value starting now sits at the path (every enclosing container an object). */
  atPath(): boolean {
    const p = this.path;
    const s = this.stack;
    if (s.length !== p.length) return false;
    for (const kind of s) if (kind !== OBJ) return false;
    return this.key1 === p[0] && (p.length === 1 || this.key2 === p[1]);
  }
}
