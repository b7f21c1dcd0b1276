import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VerifierError } from '../src/errors';
import { customTokenizer, type Encoding, loadTokenizer, type Tokenizer } from '../src/tokenizers/index';

const CORPUS: Record<string, string> = {
  ascii: 'The quick brown fox jumps over the lazy dog. 12345 + 678 = 13023!\n\tIndented line.',
  accented: 'Crème brûlée à la française, naïve façade — São Paulo, Łódź, Ærøskøbing, Straße.',
  decomposed: 'Cafe\u0301 cre\u0300me n\u0303 (combining marks)',
  cjk: '我非常渴望与人工智能一起工作。日本語のテキストと한국어 문장도 있습니다。',
  emoji: 'hello 👋 world 🌍 👍🏽 1️⃣ ❤️',
  zwj: 'family 👨‍👩‍👧‍👦 and 🧑🏽‍💻 and 🏳️‍🌈',
  flags: 'flags 🇫🇷🇯🇵🇺🇸 done',
  scripts: 'தமிழ் इंडिक ภาษาไทย العربية עברית Ελληνικά',
  mixed: 'Mixed: naïve 漢字 😀 text\n\nwith <|endoftext|> inside, e\u0301 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢.',
  spaces: '  leading and trailing  \n\n  ',
  empty: '',
};

/** Naive reference: decode every prefix; where it stops matching, the token started the next code point. */
function referenceEnds(tok: Tokenizer, ids: Uint32Array, text: string): number[] {
  const ends: number[] = [];
  let prev = 0;
  for (let i = 0; i < ids.length; i++) {
    const prefix = tok.decode(ids.subarray(0, i + 1));
    let k = 0;
    while (k < prefix.length && k < text.length && prefix[k] === text[k]) k++;
    if (k < prefix.length && k < text.length) k += text.codePointAt(k)! > 0xffff ? 2 : 1;
    prev = Math.max(prev, k);
    ends.push(prev);
  }
  return ends;
}

function isLowSurrogate(text: string, i: number): boolean {
  return (text.charCodeAt(i) & 0xfc00) === 0xdc00 && (text.charCodeAt(i - 1) & 0xfc00) === 0xd800;
}

/** Checks the offset contract; returns the spans as [start, end] pairs. */
function checkSpans(text: string, enc: Encoding): [number, number][] {
  const n = enc.ids.length;
  expect(enc.starts).toBeInstanceOf(Uint32Array);
  expect(enc.ends).toBeInstanceOf(Uint32Array);
  expect(enc.starts.length).toBe(n);
  expect(enc.ends.length).toBe(n);
  const spans: [number, number][] = [];
  let covered = '';
  for (let i = 0; i < n; i++) {
    const s = enc.starts[i];
    const e = enc.ends[i];
    expect(s).toBeLessThanOrEqual(e);
    expect(s).toBe(i === 0 ? 0 : enc.ends[i - 1]);
    expect(isLowSurrogate(text, s)).toBe(false);
    expect(isLowSurrogate(text, e)).toBe(false);
    covered += text.slice(s, e);
    spans.push([s, e]);
  }
  if (n > 0) expect(enc.ends[n - 1]).toBe(text.length);
  expect(covered).toBe(text);
  return spans;
}

function checkRoundTrip(tok: Tokenizer, text: string): Encoding {
  const enc = tok.encode(text);
  expect(enc.ids).toBeInstanceOf(Uint32Array);
  for (const id of enc.ids) expect(id).toBeLessThan(tok.vocabSize);
  expect(tok.decode(enc.ids)).toBe(text);
  expect(tok.decode(Array.from(enc.ids))).toBe(text);
  checkSpans(text, enc);
  expect(Array.from(enc.ends)).toEqual(referenceEnds(tok, enc.ids, text));
  if (tok.encodeIds) expect(Array.from(tok.encodeIds(text))).toEqual(Array.from(enc.ids));
  return enc;
}

function spansOf(enc: Encoding): [number, number][] {
  return Array.from(enc.ids, (_, i) => [enc.starts[i], enc.ends[i]] as [number, number]);
}

async function expectError(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VerifierError);
  expect((err as VerifierError).code).toBe(code);
  expect((err as Error).message).toMatch(pattern);
  expect((err as Error).message).not.toContain('\n');
}

describe.each(['o200k_base', 'cl100k_base'] as const)('%s', (name) => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await loadTokenizer(name);
  });

  it('has the tiktoken id and vocabulary size, and is loaded once', async () => {
    expect(tok.id).toBe(name);
    expect(tok.vocabSize).toBe(name === 'o200k_base' ? 200_019 : 100_277);
    expect(await loadTokenizer(name)).toBe(tok);
    // Highest special token the package defines is inside the vocabulary.
    expect(tok.decode([name === 'o200k_base' ? 200_006 : 100_276])).toBe('<|endofprompt|>');
  });

  it.each(Object.keys(CORPUS))('round-trips and gives exact spans: %s', (key) => {
    checkRoundTrip(tok, CORPUS[key]);
  });

  it('gives whole-character spans to the token that starts a character', () => {
    const text = 'hello 👋 world 🌍';
    const enc = checkRoundTrip(tok, text);
    // Reference ids are tiktoken's, as in gpt-tokenizer's own tests.
    if (name === 'o200k_base') {
      expect(Array.from(enc.ids)).toEqual([24912, 61138, 233, 2375, 130321, 235]);
      expect(spansOf(enc)).toEqual([
        [0, 5], // hello
        [5, 8], // " " + first 3 bytes of 👋 -> " 👋"
        [8, 8], // last byte of 👋
        [8, 14], // " world"
        [14, 17], // " " + first 3 bytes of 🌍
        [17, 17],
      ]);
    } else {
      expect(Array.from(enc.ids)).toEqual([15339, 62904, 233, 1917, 11410, 234, 235]);
      expect(spansOf(enc)).toEqual([
        [0, 5],
        [5, 8],
        [8, 8],
        [8, 14],
        [14, 17], // " " + first 2 bytes of 🌍
        [17, 17],
        [17, 17],
      ]);
    }
  });

  it('gives ordinary tokens their own text', () => {
    const text = CORPUS.accented;
    const enc = checkRoundTrip(tok, text);
    for (let i = 0; i < enc.ids.length; i++) {
      const piece = tok.decode([enc.ids[i]]);
      if (!piece.includes('\ufffd')) expect(text.slice(enc.starts[i], enc.ends[i])).toBe(piece);
    }
  });

  it('encodes special-token text as ordinary text', () => {
    const enc = tok.encode('a<|endoftext|>b');
    expect(enc.ids.length).toBeGreaterThan(3);
    expect(tok.decode(enc.ids)).toBe('a<|endoftext|>b');
  });

  it('keeps spans valid for a lone surrogate', () => {
    const text = 'a\ud800b \udc00 c';
    const enc = tok.encode(text);
    checkSpans(text, enc);
    expect(tok.decode(enc.ids)).toBe('a\ufffdb \ufffd c');
  });

  it('decodes independently of earlier calls', () => {
    // gpt-tokenizer's own decode carries an incomplete character over into the next call.
    const ids = tok.encode('hello 👋 world').ids;
    expect(tok.decode(ids.subarray(0, 2))).toBe('hello \ufffd');
    expect(tok.decode(tok.encode(' world').ids)).toBe(' world');
  });
});

// GPT-2's byte-to-unicode table.
function byteChar(b: number): string {
  const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  if (printable) return String.fromCharCode(b);
  let n = 0;
  for (let x = 0; x < b; x++) {
    if (!((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff))) n++;
  }
  return String.fromCharCode(256 + n);
}

const bl = (v: string | number[]) =>
  Array.from(typeof v === 'string' ? new TextEncoder().encode(v) : v, byteChar).join('');

/** A GPT-2 style byte-level BPE: 256 byte tokens, a few merges (one fuses a space with half an emoji). */
function byteLevelJson() {
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[byteChar(b)] = b;
  const merges: [string, string][] = [
    [bl(' '), bl('t')],
    [bl('h'), bl('e')],
    [bl(' t'), bl('he')],
    [bl([0xc3]), bl([0xa9])], // é
    [bl(' '), bl([0xf0])],
    [bl([0x20, 0xf0]), bl([0x9f])],
    [bl('c'), bl('a')],
  ];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const eot = Object.keys(vocab).length;
  return {
    version: '1.0',
    added_tokens: [{ id: eot, content: '<|endoftext|>', special: true, normalized: false }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', trim_offsets: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, byte_fallback: false, vocab, merges },
  };
}

/**
 * SentencePiece style: ▁ for spaces, a prefix ▁, byte fallback, a decoder that strips the first space. Llama 2
 * does it with normalizers and a Replace/Strip decoder, newer files with the Metaspace pre-tokenizer and decoder.
 */
function metaspaceJson(style: 'normalizer' | 'pre-tokenizer' = 'normalizer') {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const piece of [
    '▁',
    't',
    'h',
    'e',
    'c',
    'a',
    'f',
    'é',
    'o',
    'n',
    '▁t',
    'he',
    '▁the',
    'ca',
    '漢',
    '字',
  ]) {
    vocab[piece] = Object.keys(vocab).length;
  }
  return {
    version: '1.0',
    added_tokens: [
      { id: 0, content: '<unk>', special: true, normalized: false },
      { id: 1, content: '<s>', special: true, normalized: false },
      { id: 2, content: '</s>', special: true, normalized: false },
    ],
    post_processor: null,
    ...(style === 'normalizer'
      ? {
          normalizer: {
            type: 'Sequence',
            normalizers: [
              { type: 'Prepend', prepend: '▁' },
              { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
            ],
          },
          pre_tokenizer: null,
          decoder: {
            type: 'Sequence',
            decoders: [
              { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
              { type: 'ByteFallback' },
              { type: 'Fuse' },
              { type: 'Strip', content: ' ', start: 1, stop: 0 },
            ],
          },
        }
      : {
          normalizer: null,
          pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
          decoder: {
            type: 'Sequence',
            decoders: [
              { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
              { type: 'ByteFallback' },
              { type: 'Fuse' },
            ],
          },
        }),
    model: {
      type: 'BPE',
      unk_token: '<unk>',
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: ['▁ t', 'h e', '▁t he', 'c a'],
    },
  };
}

/** A lower-casing BERT WordPiece: decoding does not give the text back, so spans are aligned. */
function wordPieceJson() {
  const words = ['[UNK]', 'hello', ',', 'world', '##s', '!', 'cafe', '漢', '字'];
  return {
    version: '1.0',
    added_tokens: [{ id: 0, content: '[UNK]', special: true, normalized: false }],
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(words.map((w, i) => [w, i])),
    },
  };
}

describe('Hugging Face tokenizer.json', () => {
  let dir: string;
  const file = (name: string, content: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tracemark-tokenizers-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe('byte-level BPE', () => {
    let tok: Tokenizer;
    let path: string;
    beforeAll(async () => {
      path = file('byte-level.json', byteLevelJson());
      tok = await loadTokenizer(path);
    });

    it('is identified by its path and sized by its vocabulary', async () => {
      expect(tok.id).toBe(`hf:${path}`);
      expect(tok.vocabSize).toBe(256 + 7 + 1);
      expect((await loadTokenizer(`hf:${path}`)).id).toBe(`hf:${path}`);
    });

    it.each(Object.keys(CORPUS))('round-trips and gives exact spans: %s', (key) => {
      checkRoundTrip(tok, CORPUS[key]);
    });

    it('gives the expected tokens and spans', () => {
      const text = 'the café 👋';
      const enc = checkRoundTrip(tok, text);
      const vocab = byteLevelJson().model.vocab;
      const id = (v: string | number[]) => vocab[bl(v)];
      expect(Array.from(enc.ids)).toEqual([
        id('t'),
        id('he'),
        id(' '),
        id('ca'),
        id('f'),
        id('é'),
        id([0x20, 0xf0, 0x9f]),
        id([0x91]),
        id([0x8b]),
      ]);
      expect(spansOf(enc)).toEqual([
        [0, 1],
        [1, 3],
        [3, 4],
        [4, 6],
        [6, 7],
        [7, 8],
        [8, 11], // " " + half of 👋 -> " 👋"
        [11, 11],
        [11, 11],
      ]);
    });

    it('gives an added token its text', () => {
      const text = 'a<|endoftext|>b';
      const enc = checkRoundTrip(tok, text);
      expect(Array.from(enc.ids)).toEqual([97, 263, 98]);
      expect(spansOf(enc)).toEqual([
        [0, 1],
        [1, 14],
        [14, 15],
      ]);
    });
  });

  describe.each(['normalizer', 'pre-tokenizer'] as const)('SentencePiece-style BPE, ▁ by %s', (style) => {
    let tok: Tokenizer;
    beforeAll(async () => {
      tok = await loadTokenizer(file(`metaspace-${style}.json`, metaspaceJson(style)));
    });

    // The Metaspace pre-tokenizer adds no ▁ before a text that starts with a space, yet its decoder still
    // drops the first space: such texts do not survive decoding (as with the Rust library).
    const lossy = (text: string) => style === 'pre-tokenizer' && text.startsWith(' ');

    it.each(Object.keys(CORPUS))('round-trips and gives exact spans: %s', (key) => {
      const text = CORPUS[key];
      if (!lossy(text)) checkRoundTrip(tok, text);
      else {
        const enc = tok.encode(text);
        expect(tok.decode(enc.ids)).toBe(text.slice(1));
        checkSpans(text, enc);
      }
    });

    it('drops the prefix space and splits an emoji over byte tokens', () => {
      const text = 'the café 👋';
      const enc = checkRoundTrip(tok, text);
      expect(enc.ids.length).toBe(10);
      expect(tok.decode(enc.ids.subarray(0, 1))).toBe('the');
      expect(spansOf(enc)).toEqual([
        [0, 3], // ▁the (the ▁ is the prefix the decoder strips)
        [3, 4],
        [4, 6],
        [6, 7],
        [7, 8],
        [8, 9],
        [9, 11], // <0xF0> starts 👋
        [11, 11],
        [11, 11],
        [11, 11],
      ]);
    });

    it('keeps a real leading space', () => {
      if (lossy(' the')) {
        const enc = tok.encode(' the');
        expect(tok.decode(enc.ids)).toBe('the');
        expect(spansOf(enc)).toEqual([[0, 4]]);
      } else {
        const enc = checkRoundTrip(tok, ' the');
        expect(spansOf(enc)).toEqual([
          [0, 0], // the prefix ▁
          [0, 4],
        ]);
      }
    });
  });

  describe('byte-level BPE behind a lower-casing normalizer', () => {
    it('keeps exact spans when lengths survive, and valid spans otherwise', async () => {
      const plain = await loadTokenizer(file('plain.json', byteLevelJson()));
      const lower = await loadTokenizer(
        file('lower.json', { ...byteLevelJson(), normalizer: { type: 'Lowercase' } }),
      );
      const text = 'THE Café 👋 WÖRLD 漢字 🇫🇷';
      const enc = lower.encode(text);
      expect(lower.decode(enc.ids)).toBe(text.toLowerCase());
      checkSpans(text, enc);
      expect(spansOf(enc)).toEqual(spansOf(plain.encode(text.toLowerCase())));
      // İ lower-cases to two code points, so the bytes no longer add up and spans are aligned instead.
      for (const odd of ['İSTANBUL 👋', 'ΣΑΣ ǅ ẞ 🇫🇷']) checkSpans(odd, lower.encode(odd));
    });
  });

  describe('WordPiece (not round-trippable)', () => {
    let tok: Tokenizer;
    beforeAll(async () => {
      tok = await loadTokenizer(file('wordpiece.json', wordPieceJson()));
    });

    it('aligns spans onto the original text', () => {
      const text = 'Hello, worlds!';
      const enc = tok.encode(text);
      expect(Array.from(enc.ids)).toEqual([1, 2, 3, 4, 5]);
      expect(tok.decode(enc.ids)).toBe('hello , worlds !');
      expect(checkSpans(text, enc)).toEqual([
        [0, 5],
        [5, 6],
        [6, 12],
        [12, 13],
        [13, 14],
      ]);
    });

    it('keeps spans valid on text it cannot represent', () => {
      for (const text of ['HELLO  漢字 👨‍👩‍👧‍👦, Café!', CORPUS.mixed, CORPUS.flags])
        checkSpans(text, tok.encode(text));
    });
  });

  it('reads tokenizer_config.json beside the file', async () => {
    const sub = join(dir, 'with-config');
    mkdirSync(sub);
    writeFileSync(join(sub, 'tokenizer.json'), JSON.stringify(byteLevelJson()));
    writeFileSync(join(sub, 'tokenizer_config.json'), '{not json');
    await expectError(
      loadTokenizer(join(sub, 'tokenizer.json')),
      'E_TOKENIZER_FILE',
      /tokenizer_config\.json/,
    );
    writeFileSync(join(sub, 'tokenizer_config.json'), JSON.stringify({ clean_up_tokenization_spaces: true }));
    const tok = await loadTokenizer(join(sub, 'tokenizer.json'));
    expect(tok.decode(tok.encode('a , b').ids)).toBe('a , b');
  });

  describe('errors', () => {
    it('reports a missing file', async () => {
      const missing = join(dir, 'nope', 'tokenizer.json');
      await expectError(
        loadTokenizer(missing),
        'E_TOKENIZER_FILE',
        /cannot read tokenizer file .*: no such file$/,
      );
      await expectError(loadTokenizer(`hf:${missing}`), 'E_TOKENIZER_FILE', /no such file/);
      await expectError(loadTokenizer('hf:'), 'E_TOKENIZER_FILE', /needs a path/);
      await expectError(loadTokenizer(dir), 'E_TOKENIZER_FILE', /is a directory/);
    });

    it('reports malformed files', async () => {
      await expectError(loadTokenizer(file('bad.json', '{"model": {')), 'E_TOKENIZER_FILE', /not valid JSON/);
      await expectError(loadTokenizer(file('array.json', '[1, 2]')), 'E_TOKENIZER_FILE', /no "model" object/);
      await expectError(
        loadTokenizer(file('nomodel.json', { version: '1.0' })),
        'E_TOKENIZER_FILE',
        /no "model"/,
      );
      await expectError(
        loadTokenizer(file('weird.json', { model: { type: 'Mystery' } })),
        'E_TOKENIZER_FILE',
        /cannot be used: .*Mystery/,
      );
      await expectError(
        loadTokenizer(file('badregex.json', { ...byteLevelJson(), pre_tokenizer: { type: 'Nope' } })),
        'E_TOKENIZER_FILE',
        /cannot be used/,
      );
    });
  });
});

describe('loadTokenizer', () => {
  it('rejects unknown names with a stable code and one line', async () => {
    await expectError(
      loadTokenizer('gpt5_base'),
      'E_UNKNOWN_TOKENIZER',
      /^unknown tokenizer "gpt5_base": expected o200k_base, cl100k_base, a path to a tokenizer\.json, or hf:<path>$/,
    );
    await expectError(loadTokenizer('o200k\nbase'), 'E_UNKNOWN_TOKENIZER', /"o200k\\nbase"/);
    await expectError(loadTokenizer(''), 'E_UNKNOWN_TOKENIZER', /no tokenizer given/);
  });
});

describe('customTokenizer', () => {
  const utf8 = new TextEncoder();
  const utf8Decoder = new TextDecoder();
  const bytes = customTokenizer(
    'bytes',
    256,
    (t) => utf8.encode(t),
    (ids) => utf8Decoder.decode(Uint8Array.from(ids)),
  );
  const codePoints = customTokenizer(
    'custom:code-points',
    0x110000,
    (t) => Array.from(t, (c) => c.codePointAt(0)!),
    (ids) => String.fromCodePoint(...ids),
  );

  it('prefixes its id and keeps its vocabulary size', () => {
    expect(bytes.id).toBe('custom:bytes');
    expect(codePoints.id).toBe('custom:code-points');
    expect(bytes.vocabSize).toBe(256);
  });

  it.each(Object.keys(CORPUS))('round-trips and gives exact spans: %s', (key) => {
    checkRoundTrip(bytes, CORPUS[key]);
    checkRoundTrip(codePoints, CORPUS[key]);
  });

  it('gives a character to the token holding its first byte', () => {
    const enc = checkRoundTrip(bytes, 'aé👋中');
    expect(spansOf(enc)).toEqual([
      [0, 1],
      [1, 2],
      [2, 2],
      [2, 4],
      [4, 4],
      [4, 4],
      [4, 4],
      [4, 5],
      [5, 5],
      [5, 5],
    ]);
    expect(spansOf(codePoints.encode('aé👋中'))).toEqual([
      [0, 1],
      [1, 2],
      [2, 4],
      [4, 5],
    ]);
  });

  it('matches the built-in spans when wrapping a built-in tokenizer', async () => {
    const o200k = await loadTokenizer('o200k_base');
    const wrapped = customTokenizer(
      'o200k',
      o200k.vocabSize,
      (t) => o200k.encode(t).ids,
      (ids) => o200k.decode(ids),
    );
    for (const text of Object.values(CORPUS)) {
      const a = o200k.encode(text);
      const b = wrapped.encode(text);
      expect(Array.from(b.starts)).toEqual(Array.from(a.starts));
      expect(Array.from(b.ends)).toEqual(Array.from(a.ends));
    }
  });

  it('keeps spans valid when decoding changes the text', () => {
    const lower = customTokenizer(
      'lower',
      0x110000,
      (t) => Array.from(t.toLowerCase(), (c) => c.codePointAt(0)!),
      (ids) => String.fromCodePoint(...ids),
    );
    const text = 'HELLO Wörld 👋 ÉTÉ';
    const enc = lower.encode(text);
    expect(lower.decode(enc.ids)).toBe(text.toLowerCase());
    expect(checkSpans(text, enc).map(([s, e]) => text.slice(s, e))).toEqual(Array.from(text));
  });

  it('rejects ids outside the vocabulary and bad arguments', () => {
    const bad = customTokenizer(
      'bad',
      10,
      () => [1, 2, 10],
      () => '',
    );
    expect(() => bad.encode('x')).toThrowError(expect.objectContaining({ code: 'E_TOKEN_RANGE' }));
    expect(() =>
      customTokenizer(
        'z',
        0,
        () => [],
        () => '',
      ),
    ).toThrowError(expect.objectContaining({ code: 'E_INVALID_OPTIONS' }));
  });
});
