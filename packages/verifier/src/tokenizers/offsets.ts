/**
 * Token spans in UTF-16 offsets. The rule everywhere: a code point belongs to the token holding its first
 * UTF-8 byte; a token holding only continuation bytes gets the empty span at that code point's end. So spans
 * are contiguous (starts[i] === ends[i - 1]), never cut a surrogate pair, and cover the text in order.
 */

export interface Spans {
  starts: Uint32Array;
  ends: Uint32Array;
}

/** UTF-8 length as TextEncoder counts it (a lone surrogate becomes U+FFFD, three bytes). */
export function utf8Length(s: string): number {
  let n = 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Marks a length-table entry whose bytes are all ASCII, so the walk can skip over it in one step. */
export const ASCII_FLAG = 0x8000;

/** One length-table entry: the token's UTF-8 byte count (capped) and whether those bytes are all ASCII. */
export function packLength(bytes: number, ascii: boolean): number {
  return Math.min(bytes, ASCII_FLAG - 1) | (ascii ? ASCII_FLAG : 0);
}

export function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

/**
 * Spans from a table of token byte lengths (see packLength), walking the text once. `skip` bytes at the start
 * of the token stream are not in the text (a SentencePiece prefix space). Returns null when the token bytes
 * do not add up to the text's bytes, i.e. the tokenizer changed the text.
 */
export function spansFromByteLengths(
  text: string,
  ids: Uint32Array,
  lengths: Uint16Array,
  skip = 0,
): Spans | null {
  const n = ids.length;
  const starts = new Uint32Array(n);
  const ends = new Uint32Array(n);
  const len = text.length;
  let u = 0; // UTF-16 offset of the next code point not yet assigned
  let b = 0; // its UTF-8 offset
  let p = -skip; // UTF-8 offset where the current token ends
  for (let i = 0; i < n; i++) {
    starts[i] = u;
    const entry = lengths[ids[i]];
    if (entry & ASCII_FLAG && b === p) {
      // ASCII bytes at a character boundary are the same number of ASCII characters.
      const l = entry ^ ASCII_FLAG;
      p += l;
      b = p;
      u += l;
    } else {
      p += entry & (ASCII_FLAG - 1);
      while (b < p && u < len) {
        const c = text.charCodeAt(u);
        if (c < 0x80) {
          b += 1;
          u += 1;
        } else if (c < 0x800) {
          b += 2;
          u += 1;
        } else if (
          c >= 0xd800 &&
          c <= 0xdbff &&
          u + 1 < len &&
          (text.charCodeAt(u + 1) & 0xfc00) === 0xdc00
        ) {
          b += 4;
          u += 2;
        } else {
          b += 3;
          u += 1;
        }
      }
    }
    ends[i] = u;
  }
  return u === len && b === p ? { starts, ends } : null;
}

function codePointLength(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
}

function commonPrefix(a: string, ai: number, b: string, bi: number): number {
  const max = Math.min(a.length - ai, b.length - bi);
  let k = 0;
  while (k < max && a.charCodeAt(ai + k) === b.charCodeAt(bi + k)) k++;
  return k;
}

// Tokens of left context for window decodes: enough for decoders that treat a sequence's first token
// specially (SentencePiece drops its leading space).
const CONTEXT = 3;
// A mismatch that never resolves (a decoder that is not prefix-stable) must not grow the windows forever.
const MAX_PENDING = 32;

/**
 * Token end offsets in `full` (= decodeRange(0, n)), found by decoding short windows: ends[i] is where the
 * decoding of ids[0..i] stops matching `full`, pushed to the end of a code point left incomplete (shown as
 * U+FFFD), which gives the first-byte rule without knowing the bytes. Linear in the token count.
 */
function endsByDecoding(
  n: number,
  decodeRange: (from: number, to: number) => string,
  full: string,
): Uint32Array {
  const ends = new Uint32Array(n);
  let anchor = 0; // ids[0..anchor] decode to exactly full[0..anchorPos]
  let anchorPos = 0;
  let from = 0;
  let base = '';
  let baseFresh = true;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    if (!baseFresh) {
      from = Math.max(0, anchor - CONTEXT);
      base = decodeRange(from, anchor);
      baseFresh = true;
    }
    const w = decodeRange(from, i + 1);
    const k = commonPrefix(base, 0, w, 0);
    const pos = Math.max(0, anchorPos - (base.length - k));
    const m = commonPrefix(w, k, full, pos);
    let end = pos + m;
    if (k + m === w.length) {
      anchor = i + 1;
      anchorPos = end;
      baseFresh = false;
    } else {
      if (end < full.length) end += codePointLength(full, end);
      if (i + 1 - anchor >= MAX_PENDING) {
        anchor = i + 1;
        anchorPos = end;
        baseFresh = false;
      }
    }
    if (end < prev) end = prev;
    ends[i] = prev = end;
  }
  return ends;
}

const SPACE = /\s/;
const MARK = /\p{M}/u;

/**
 * Maps offsets in `full` (what the tokenizer decodes to) onto `text` when the two differ (lower-casing,
 * accent stripping, inserted spaces). Greedy and linear: best effort, not exact.
 */
function alignToText(ends: Uint32Array, full: string, text: string): void {
  const map = new Uint32Array(full.length + 1);
  let i = 0;
  let j = 0;
  while (i < full.length) {
    map[i] = j;
    const a = full[i];
    const b = j < text.length ? text[j] : '';
    if (a === b || (b !== '' && a.toLowerCase() === b.toLowerCase())) {
      i++;
      j++;
    } else if (SPACE.test(a)) i++;
    else if (b !== '' && (SPACE.test(b) || MARK.test(b))) j++;
    else {
      i++;
      if (j < text.length) j++;
    }
  }
  map[full.length] = j;
  let prev = 0;
  for (let t = 0; t < ends.length; t++) {
    let e = map[Math.min(ends[t], full.length)];
    // Never end between the halves of a surrogate pair.
    if (e > 0 && e < text.length && (text.charCodeAt(e) & 0xfc00) === 0xdc00) e++;
    if (e < prev) e = prev;
    ends[t] = prev = e;
  }
}

/**
 * Spans for any tokenizer that can decode: exact when decoding the ids gives back `text`, otherwise aligned
 * best-effort; the last span always runs to the end of the text so the spans still cover it.
 */
export function spansByDecoding(
  text: string,
  n: number,
  decodeRange: (from: number, to: number) => string,
): Spans {
  if (n === 0) return { starts: new Uint32Array(0), ends: new Uint32Array(0) };
  const full = decodeRange(0, n);
  const ends = endsByDecoding(n, decodeRange, full);
  if (full !== text) alignToText(ends, full, text);
  ends[n - 1] = text.length;
  const starts = new Uint32Array(n);
  starts.set(ends.subarray(0, n - 1), 1);
  return { starts, ends };
}
