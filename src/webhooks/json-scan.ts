/**
 * A streaming JSON scanner: validates a JSON document fed in byte chunks split anywhere, and lifts
 * ONE string value out of it (by default `data.full_audio`) as it goes, so that value never has to
 * be held in memory. Pure: no bindings.
 *
 * Everything else (the "rest": every byte outside that string's content, its two quotes included)
 * is handed to `rest`, so the rest of a post_call_audio body is a small, valid JSON document with
 * `"full_audio":""`, and the rest of any other body is the body itself, byte for byte.
 *
 * Why the rest is then parsed with JSON.parse rather than having this scanner also pick out `type`,
 * `conversation_id` and `agent_id`: it is small (everything but the audio), and JSON.parse is the
 * authority on escapes, duplicate keys (last wins) and value types that the buffered path already
 * uses for every other event. A second hand-written extractor could only disagree with it. What
 * this scanner must get right is narrower: where the lifted string starts and ends (keys matched
 * after unescaping, any key order, any whitespace, escapes split across chunks) and whether the
 * document is valid JSON, so a malformed body is known as soon as it goes wrong.
 *
 * Invariant that makes the split safe: the lifted content is only ever JSON string characters
 * (escapes checked here, raw control characters refused), so the original document is valid JSON
 * exactly when the rest is.
 */

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    /** Byte offset in the whole document. */
    readonly offset: number,
  ) {
    super(`${message} at byte ${offset}`);
    this.name = "JsonSyntaxError";
  }
}

export interface ScanSink {
  /** Bytes outside the lifted value's content. The view is only valid during the call. */
  rest(bytes: Uint8Array): void;
  /** The lifted value begins (its opening quote went to `rest`). */
  valueStart(): void;
  /** A run of the lifted value's raw content (no quote, backslash or control byte). Valid during the call. */
  valueBytes(bytes: Uint8Array): void;
  /** One escaped character of the lifted value, decoded to a UTF-16 code unit (`\/` gives 0x2f). */
  valueCodeUnit(unit: number): void;
  /** The lifted value ended (its closing quote goes to `rest`). */
  valueEnd(): void;
}

const enum State {
  Bom1,
  Bom2,
  Value,
  ValueOrClose,
  Key,
  KeyOrClose,
  Colon,
  AfterValue,
  Str,
  Escape,
  Unicode,
  NumMinus,
  NumZero,
  NumInt,
  NumDot,
  NumFrac,
  NumExp,
  NumExpSign,
  NumExpDigits,
  Literal,
  Done,
}

const enum StrKind {
  /** A key in an object at depth 1 or 2: decoded, to match the path. */
  Key,
  /** The value being lifted. */
  Lifted,
  /** Any other string. */
  Plain,
}

const OBJ = 1;
const ARR = 2;

/** Keys longer than this cannot be a path segment we look for; they are not collected. */
const MAX_KEY_CHARS = 64;

const BOM = new Uint8Array([0xef, 0xbb, 0xbf]);
const LITERALS = [new TextEncoder().encode("true"), new TextEncoder().encode("false"), new TextEncoder().encode("null")];

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

const SIMPLE_ESCAPES: Record<number, number> = {
  0x22: 0x22, // \"
  0x5c: 0x5c, // \\
  0x2f: 0x2f, // \/
  0x62: 0x08, // \b
  0x66: 0x0c, // \f
  0x6e: 0x0a, // \n
  0x72: 0x0d, // \r
  0x74: 0x09, // \t
};

export class JsonScanner {
  private state = State.Bom1;
  /** Container kinds, innermost last. Explicit, so nesting depth costs memory, never stack. */
  private stack: number[] = [];
  private strKind = StrKind.Plain;
  private strIsKey = false;
  private unicode = 0;
  private unicodeDigits = 0;
  private literal: Uint8Array = LITERALS[0]!;
  private literalPos = 0;
  /** Decoded key being read (depth 1 or 2), or null once it is too long to matter. */
  private keyChars: string | null = null;
  /** Current key of the depth-1 and depth-2 objects. */
  private key1: string | null = null;
  private key2: string | null = null;
  private offset = 0;
  private lifted = 0;

  /** @param path the lifted value's path: one or two object keys from the top level. */
  constructor(
    private readonly sink: ScanSink,
    private readonly path: readonly [string] | readonly [string, string] = ["data", "full_audio"],
  ) {}

  /** How many times the lifted path held a string (more than once means duplicate keys). */
  get liftedCount(): number {
    return this.lifted;
  }

  write(buf: Uint8Array): void {
    const end = buf.length;
    const sink = this.sink;
    let i = 0;
    // Start of the pending run for `rest` (or for `valueBytes` while inside the lifted string).
    let runStart = 0;
    const fail = (message: string): never => {
      throw new JsonSyntaxError(message, this.offset + i);
    };
    while (i < end) {
      const c = buf[i]!;
      switch (this.state) {
        case State.Str: {
          // Hot loop: the audio is almost all here.
          let j = i;
          while (j < end) {
            const d = buf[j]!;
            if (d === 0x22 || d === 0x5c || d < 0x20) break;
            j++;
          }
          if (j > i) {
            if (this.strKind === StrKind.Key) this.collectKeyBytes(buf, i, j);
            i = j;
            if (i === end) continue;
          }
          const d = buf[i]!;
          if (d === 0x22) {
            if (this.strKind === StrKind.Lifted) {
              if (i > runStart) sink.valueBytes(buf.subarray(runStart, i));
              sink.valueEnd();
              runStart = i;
            }
            this.endString();
          } else if (d === 0x5c) {
            if (this.strKind === StrKind.Lifted && i > runStart) sink.valueBytes(buf.subarray(runStart, i));
            this.state = State.Escape;
          } else {
            fail("Unescaped control character in a string");
          }
          i++;
          if (this.strKind === StrKind.Lifted && this.state === State.Str) runStart = i;
          continue;
        }
        case State.Escape: {
          if (c === 0x75) {
            this.state = State.Unicode;
            this.unicode = 0;
            this.unicodeDigits = 0;
          } else {
            const unit = SIMPLE_ESCAPES[c];
            if (unit === undefined) fail("Invalid escape in a string");
            this.codeUnit(unit!);
            this.state = State.Str;
          }
          i++;
          if (this.state === State.Str && this.strKind === StrKind.Lifted) runStart = i;
          continue;
        }
        case State.Unicode: {
          const h = hexValue(c);
          if (h < 0) fail("Invalid \\u escape");
          this.unicode = (this.unicode << 4) | h;
          if (++this.unicodeDigits === 4) {
            this.codeUnit(this.unicode);
            this.state = State.Str;
          }
          i++;
          if (this.state === State.Str && this.strKind === StrKind.Lifted) runStart = i;
          continue;
        }
        case State.Bom1:
          if (c === 0xef) {
            this.state = State.Bom2;
            this.literal = BOM;
            this.literalPos = 1;
            i++;
            continue;
          }
          this.state = State.Value;
          continue;
        case State.Bom2:
          if (c !== this.literal[this.literalPos]) fail("Invalid byte-order mark");
          if (++this.literalPos === 3) this.state = State.Value;
          i++;
          continue;
        case State.Value:
        case State.ValueOrClose:
          if (isWs(c)) break;
          if (c === 0x5d && this.state === State.ValueOrClose) {
            this.close();
            break;
          }
          if (c === 0x22) {
            this.startString(false);
            i++;
            if (this.strKind === StrKind.Lifted) {
              sink.rest(buf.subarray(runStart, i));
              sink.valueStart();
              runStart = i;
            }
            continue;
          }
          this.startValue(c, fail);
          break;
        case State.Key:
        case State.KeyOrClose:
          if (isWs(c)) break;
          if (c === 0x7d && this.state === State.KeyOrClose) {
            this.close();
            break;
          }
          if (c !== 0x22) fail("Expected a string key");
          this.startString(true);
          break;
        case State.Colon:
          if (isWs(c)) break;
          if (c !== 0x3a) fail("Expected ':'");
          this.state = State.Value;
          break;
        case State.AfterValue: {
          if (isWs(c)) break;
          const top = this.stack[this.stack.length - 1];
          if (c === 0x2c && top !== undefined) {
            this.state = top === OBJ ? State.Key : State.Value;
          } else if (c === 0x7d && top === OBJ) {
            this.close();
          } else if (c === 0x5d && top === ARR) {
            this.close();
          } else {
            fail(top === undefined ? "Unexpected data after the document" : "Expected ',' or a closing bracket");
          }
          break;
        }
        case State.NumMinus:
          if (c === 0x30) this.state = State.NumZero;
          else if (c >= 0x31 && c <= 0x39) this.state = State.NumInt;
          else fail("Invalid number");
          break;
        case State.NumZero:
        case State.NumInt:
          if (this.state === State.NumInt && c >= 0x30 && c <= 0x39) break;
          if (c === 0x2e) this.state = State.NumDot;
          else if (c === 0x65 || c === 0x45) this.state = State.NumExp;
          else {
            this.valueDone();
            continue; // re-read this byte as what follows the number
          }
          break;
        case State.NumDot:
          if (c >= 0x30 && c <= 0x39) this.state = State.NumFrac;
          else fail("Invalid number");
          break;
        case State.NumFrac:
          if (c >= 0x30 && c <= 0x39) break;
          if (c === 0x65 || c === 0x45) this.state = State.NumExp;
          else {
            this.valueDone();
            continue;
          }
          break;
        case State.NumExp:
          if (c === 0x2b || c === 0x2d) this.state = State.NumExpSign;
          else if (c >= 0x30 && c <= 0x39) this.state = State.NumExpDigits;
          else fail("Invalid number");
          break;
        case State.NumExpSign:
          if (c >= 0x30 && c <= 0x39) this.state = State.NumExpDigits;
          else fail("Invalid number");
          break;
        case State.NumExpDigits:
          if (c >= 0x30 && c <= 0x39) break;
          this.valueDone();
          continue;
        case State.Literal:
          if (c !== this.literal[this.literalPos]) fail("Invalid literal");
          if (++this.literalPos === this.literal.length) this.valueDone();
          break;
        case State.Done:
          if (!isWs(c)) fail("Unexpected data after the document");
          break;
      }
      i++;
    }
    // After a throw nothing more is handed on: the document is invalid and the caller stops here.
    if (this.inLifted()) {
      if (this.state === State.Str && end > runStart) sink.valueBytes(buf.subarray(runStart, end));
    } else if (end > runStart) {
      sink.rest(buf.subarray(runStart, end));
    }
    this.offset += end;
  }

  /** Ends the document. Throws unless it was exactly one complete JSON value. */
  finish(): void {
    switch (this.state) {
      case State.NumZero:
      case State.NumInt:
      case State.NumFrac:
      case State.NumExpDigits:
        this.valueDone();
        break;
    }
    if (this.state !== State.Done) throw new JsonSyntaxError("Unexpected end of the document", this.offset);
  }

  private inLifted(): boolean {
    return (
      this.strKind === StrKind.Lifted &&
      (this.state === State.Str || this.state === State.Escape || this.state === State.Unicode)
    );
  }

  private startValue(c: number, fail: (m: string) => never): void {
    if (c === 0x7b) {
      this.stack.push(OBJ);
      this.state = State.KeyOrClose;
      if (this.stack.length === 1) this.key1 = null;
      else if (this.stack.length === 2) this.key2 = null;
    } else if (c === 0x5b) {
      this.stack.push(ARR);
      this.state = State.ValueOrClose;
    } else if (c === 0x2d) {
      this.state = State.NumMinus;
    } else if (c === 0x30) {
      this.state = State.NumZero;
    } else if (c >= 0x31 && c <= 0x39) {
      this.state = State.NumInt;
    } else if (c === 0x74 || c === 0x66 || c === 0x6e) {
      this.literal = LITERALS[c === 0x74 ? 0 : c === 0x66 ? 1 : 2]!;
      this.literalPos = 1;
      this.state = State.Literal;
    } else {
      fail("Expected a value");
    }
  }

  private startString(isKey: boolean): void {
    this.state = State.Str;
    this.strIsKey = isKey;
    const depth = this.stack.length;
    if (isKey) {
      this.strKind = depth <= this.path.length ? StrKind.Key : StrKind.Plain;
      this.keyChars = "";
    } else {
      this.strKind = this.isLiftedPath() ? StrKind.Lifted : StrKind.Plain;
      if (this.strKind === StrKind.Lifted) this.lifted++;
    }
  }

  /** Whether a value starting now sits at the lifted path (every enclosing container an object). */
  private isLiftedPath(): boolean {
    const p = this.path;
    const s = this.stack;
    if (s.length !== p.length) return false;
    for (const kind of s) if (kind !== OBJ) return false;
    return this.key1 === p[0] && (p.length === 1 || this.key2 === p[1]);
  }

  private endString(): void {
    if (this.strIsKey) {
      if (this.strKind === StrKind.Key) {
        if (this.stack.length === 1) this.key1 = this.keyChars;
        else this.key2 = this.keyChars;
      } else if (this.stack.length === 1) {
        this.key1 = null;
      } else if (this.stack.length === 2) {
        this.key2 = null;
      }
      this.state = State.Colon;
    } else {
      this.valueDone();
    }
    this.strKind = StrKind.Plain;
  }

  private codeUnit(unit: number): void {
    if (this.strKind === StrKind.Lifted) this.sink.valueCodeUnit(unit);
    else if (this.strKind === StrKind.Key) this.appendKey(String.fromCharCode(unit));
  }

  private collectKeyBytes(buf: Uint8Array, start: number, end: number): void {
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

  private appendKey(ch: string): void {
    if (this.keyChars === null) return;
    this.keyChars = this.keyChars.length >= MAX_KEY_CHARS ? null : this.keyChars + ch;
  }

  private close(): void {
    this.stack.pop();
    this.valueDone();
  }

  private valueDone(): void {
    this.state = this.stack.length === 0 ? State.Done : State.AfterValue;
  }
}
