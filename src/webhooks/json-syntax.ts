/**
 * The byte-level vocabulary of the streaming JSON scanner (src/webhooks/json-scan.ts): its error, the
 * sink it reports to, and the small tables it reads bytes with. Pure.
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

export const BOM = new Uint8Array([0xef, 0xbb, 0xbf]);
export const LITERALS = [new TextEncoder().encode("true"), new TextEncoder().encode("false"), new TextEncoder().encode("null")];

export function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

export const SIMPLE_ESCAPES: Record<number, number> = {
  0x22: 0x22, // \"
  0x5c: 0x5c, // \\
  0x2f: 0x2f, // \/
  0x62: 0x08, // \b
  0x66: 0x0c, // \f
  0x6e: 0x0a, // \n
  0x72: 0x0d, // \r
  0x74: 0x09, // \t
};

/** The scanner's states (a const enum: the bundle inlines the numbers). */
export const enum State {
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

export const enum StrKind {
  /** A key in an object at depth 1 or 2: decoded, to match the path. */
  Key,
  /** The value being lifted. */
  Lifted,
  /** Any other string. */
  Plain,
}

/** What `numberStep` answers besides a next state: the number ended before this byte, or the byte is invalid. */
export const END = -1;
export const INVALID = -2;

/** One byte of a number, in number state `state`: the next state, END (re-read the byte after the number) or INVALID. */
export function numberStep(state: State, c: number): State | typeof END | typeof INVALID {
  const digit = c >= 0x30 && c <= 0x39;
  const exp = c === 0x65 || c === 0x45;
  switch (state) {
    case State.NumMinus:
      return c === 0x30 ? State.NumZero : c >= 0x31 && c <= 0x39 ? State.NumInt : INVALID;
    case State.NumZero:
    case State.NumInt:
      if (digit && state === State.NumInt) return state;
      return c === 0x2e ? State.NumDot : exp ? State.NumExp : END;
    case State.NumDot:
      return digit ? State.NumFrac : INVALID;
    case State.NumFrac:
      return digit ? state : exp ? State.NumExp : END;
    case State.NumExp:
      return c === 0x2b || c === 0x2d ? State.NumExpSign : digit ? State.NumExpDigits : INVALID;
    case State.NumExpSign:
      return digit ? State.NumExpDigits : INVALID;
    default:
      return digit ? state : END;
  }
}
