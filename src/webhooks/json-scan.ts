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

import { KeyPath, ARR, OBJ } from "./json-path";
import { BOM, END, hexValue, INVALID, isWs, JsonSyntaxError, LITERALS, numberStep, SIMPLE_ESCAPES, State, StrKind, type ScanSink } from "./json-syntax";

export { JsonSyntaxError, type ScanSink };

export class JsonScanner {
  private state = State.Bom1;
  private readonly keys: KeyPath;
  private strKind = StrKind.Plain;
  private strIsKey = false;
  private unicode = 0;
  private unicodeDigits = 0;
  private literal: Uint8Array = LITERALS[0]!;
  private literalPos = 0;
  private offset = 0;
  private lifted = 0;

  /** @param path the lifted value's path: one or two object keys from the top level. */
  constructor(
    private readonly sink: ScanSink,
    path: readonly [string] | readonly [string, string] = ["data", "full_audio"],
  ) {
    this.keys = new KeyPath(path);
  }

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
            if (this.strKind === StrKind.Key) this.keys.keyBytes(buf, i, j);
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
          const top = this.keys.top();
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
        case State.NumZero:
        case State.NumInt:
        case State.NumDot:
        case State.NumFrac:
        case State.NumExp:
        case State.NumExpSign:
        case State.NumExpDigits:
        {
          const next = numberStep(this.state, c);
          if (next !== END) {
            this.state = next === INVALID ? fail("Invalid number") : next;
            break;
          }
          this.valueDone();
          continue; // re-read this byte as what follows the number
        }
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
      this.keys.open(OBJ);
      this.state = State.KeyOrClose;
    } else if (c === 0x5b) {
      this.keys.open(ARR);
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
    if (isKey) {
      this.strKind = this.keys.startKey() ? StrKind.Key : StrKind.Plain;
    } else {
      this.strKind = this.keys.atPath() ? StrKind.Lifted : StrKind.Plain;
      if (this.strKind === StrKind.Lifted) this.lifted++;
    }
  }

  private endString(): void {
    if (this.strIsKey) {
      this.keys.endKey(this.strKind === StrKind.Key);
      this.state = State.Colon;
    } else {
      this.valueDone();
    }
    this.strKind = StrKind.Plain;
  }

  private codeUnit(unit: number): void {
    if (this.strKind === StrKind.Lifted) this.sink.valueCodeUnit(unit);
    else if (this.strKind === StrKind.Key) this.keys.keyChar(String.fromCharCode(unit));
  }

  private close(): void {
    this.keys.pop();
    this.valueDone();
  }

  private valueDone(): void {
    this.state = this.keys.depth === 0 ? State.Done : State.AfterValue;
  }
}
