/**
 * A minimal GGUF v3 writer and a tiny random one-layer llama with a byte-fallback SentencePiece vocabulary,
 * made at test time so that node-llama-cpp (llama.cpp) can load a real model offline.
 *
 * GGUF v3: magic "GGUF", version, tensor count, metadata count, the metadata key/values, the tensor infos
 * (name, dimensions innermost first, type, offset), then the tensor data, each tensor aligned to 32 bytes.
 */
import { writeFileSync } from 'node:fs';

const ALIGNMENT = 32;
const GGML_TYPE_F32 = 0;

/** GGUF metadata value types. */
const T = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;

type Value =
  | { u32: number }
  | { f32: number }
  | { bool: boolean }
  | { string: string }
  | { strings: string[] }
  | { f32s: number[] }
  | { i32s: number[] };

class Buffer8 {
  #bytes = new Uint8Array(1 << 16);
  #view = new DataView(this.#bytes.buffer);
  length = 0;

  #reserve(n: number): void {
    if (this.length + n <= this.#bytes.length) return;
    const next = new Uint8Array(Math.max(2 * this.#bytes.length, this.length + n));
    next.set(this.#bytes.subarray(0, this.length));
    this.#bytes = next;
    this.#view = new DataView(next.buffer);
  }

  u8(x: number): void {
    this.#reserve(1);
    this.#view.setUint8(this.length, x);
    this.length += 1;
  }
  u32(x: number): void {
    this.#reserve(4);
    this.#view.setUint32(this.length, x, true);
    this.length += 4;
  }
  i32(x: number): void {
    this.#reserve(4);
    this.#view.setInt32(this.length, x, true);
    this.length += 4;
  }
  u64(x: number): void {
    this.#reserve(8);
    this.#view.setBigUint64(this.length, BigInt(x), true);
    this.length += 8;
  }
  f32(x: number): void {
    this.#reserve(4);
    this.#view.setFloat32(this.length, x, true);
    this.length += 4;
  }
  raw(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#bytes.set(bytes, this.length);
    this.length += bytes.length;
  }
  string(s: string): void {
    const bytes = new TextEncoder().encode(s);
    this.u64(bytes.length);
    this.raw(bytes);
  }
  pad(): void {
    while (this.length % ALIGNMENT !== 0) this.u8(0);
  }
  result(): Uint8Array {
    return this.#bytes.slice(0, this.length);
  }
}

function writeValue(b: Buffer8, v: Value): void {
  if ('u32' in v) {
    b.u32(T.u32);
    b.u32(v.u32);
  } else if ('f32' in v) {
    b.u32(T.f32);
    b.f32(v.f32);
  } else if ('bool' in v) {
    b.u32(T.bool);
    b.u8(v.bool ? 1 : 0);
  } else if ('string' in v) {
    b.u32(T.string);
    b.string(v.string);
  } else {
    b.u32(T.array);
    if ('strings' in v) {
      b.u32(T.string);
      b.u64(v.strings.length);
      for (const s of v.strings) b.string(s);
    } else if ('f32s' in v) {
      b.u32(T.f32);
      b.u64(v.f32s.length);
      for (const x of v.f32s) b.f32(x);
    } else {
      b.u32(T.i32);
      b.u64(v.i32s.length);
      for (const x of v.i32s) b.i32(x);
    }
  }
}

export interface GgufTensor {
  name: string;
  /** ggml order: innermost (contiguous) dimension first. */
  dims: number[];
  data: Float32Array;
}

export function encodeGguf(metadata: [string, Value][], tensors: GgufTensor[]): Uint8Array {
  const b = new Buffer8();
  b.raw(new TextEncoder().encode('GGUF'));
  b.u32(3);
  b.u64(tensors.length);
  b.u64(metadata.length);
  for (const [key, value] of metadata) {
    b.string(key);
    writeValue(b, value);
  }
  let offset = 0;
  for (const t of tensors) {
    b.string(t.name);
    b.u32(t.dims.length);
    for (const d of t.dims) b.u64(d);
    b.u32(GGML_TYPE_F32);
    b.u64(offset);
    offset += Math.ceil(t.data.byteLength / ALIGNMENT) * ALIGNMENT;
  }
  b.pad();
  for (const t of tensors) {
    b.raw(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    b.pad();
  }
  return b.result();
}

/** Token ids of the byte-fallback vocabulary: 0 <unk>, 1 <s>, 2 </s>, then byte b at 3 + b. */
export const TINY_BOS = 1;
export const TINY_EOS = 2;
export const TINY_VOCAB = 3 + 256;
const EMBED = 64;
const FFN = 128;
const HEADS = 4;

function gaussian(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

/**
 * A random one-layer llama (RMSNorm, rotary attention with 4 heads, SwiGLU feed-forward) over the byte
 * vocabulary. Embedding dimension 0 is a constant, and the output rows of <unk>, <s> and </s> weigh it
 * strongly negative, so the model writes bytes and (almost) never ends a text by itself.
 */
export function tinyLlama(seed = 1, vocab = TINY_VOCAB): Uint8Array {
  const rng = gaussian(seed);
  const matrix = (name: string, inner: number, outer: number, scale: number): GgufTensor => {
    const data = new Float32Array(inner * outer);
    for (let i = 0; i < data.length; i++) data[i] = scale * rng();
    return { name, dims: [inner, outer], data };
  };
  const ones = (name: string): GgufTensor => ({ name, dims: [EMBED], data: new Float32Array(EMBED).fill(1) });
  const embed = matrix('token_embd.weight', EMBED, vocab, 1);
  for (let t = 0; t < vocab; t++) embed.data[t * EMBED] = 4;
  const output = matrix('output.weight', EMBED, vocab, 2 / Math.sqrt(EMBED));
  for (let t = 0; t < vocab; t++) output.data[t * EMBED] = t < 3 ? -6 : 0;
  const s = 1 / Math.sqrt(EMBED);
  const tensors: GgufTensor[] = [
    embed,
    ones('output_norm.weight'),
    output,
    ones('blk.0.attn_norm.weight'),
    matrix('blk.0.attn_q.weight', EMBED, EMBED, s),
    matrix('blk.0.attn_k.weight', EMBED, EMBED, s),
    matrix('blk.0.attn_v.weight', EMBED, EMBED, s),
    matrix('blk.0.attn_output.weight', EMBED, EMBED, s),
    ones('blk.0.ffn_norm.weight'),
    matrix('blk.0.ffn_gate.weight', EMBED, FFN, s),
    matrix('blk.0.ffn_up.weight', EMBED, FFN, s),
    matrix('blk.0.ffn_down.weight', FFN, EMBED, 1 / Math.sqrt(FFN)),
  ];
  const tokens = ['<unk>', '<s>', '</s>'];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  // Beyond the bytes (benchmarks at a real vocabulary size): plain tokens no text will contain.
  for (let t = TINY_VOCAB; t < vocab; t++) tokens.push(`<extra_${t}>`);
  const types = tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < TINY_VOCAB ? 6 : 1)); // unknown, control, byte, normal
  const metadata: [string, Value][] = [
    ['general.architecture', { string: 'llama' }],
    ['general.name', { string: 'tracemark tiny llama' }],
    ['general.alignment', { u32: ALIGNMENT }],
    ['llama.context_length', { u32: 2048 }],
    ['llama.embedding_length', { u32: EMBED }],
    ['llama.block_count', { u32: 1 }],
    ['llama.feed_forward_length', { u32: FFN }],
    ['llama.attention.head_count', { u32: HEADS }],
    ['llama.attention.head_count_kv', { u32: HEADS }],
    ['llama.rope.dimension_count', { u32: EMBED / HEADS }],
    ['llama.attention.layer_norm_rms_epsilon', { f32: 1e-5 }],
    ['llama.vocab_size', { u32: vocab }],
    ['tokenizer.ggml.model', { string: 'llama' }],
    ['tokenizer.ggml.tokens', { strings: tokens }],
    ['tokenizer.ggml.scores', { f32s: tokens.map(() => 0) }],
    ['tokenizer.ggml.token_type', { i32s: types }],
    ['tokenizer.ggml.unknown_token_id', { u32: 0 }],
    ['tokenizer.ggml.bos_token_id', { u32: TINY_BOS }],
    ['tokenizer.ggml.eos_token_id', { u32: TINY_EOS }],
    ['tokenizer.ggml.add_bos_token', { bool: true }],
    ['tokenizer.ggml.add_eos_token', { bool: false }],
  ];
  return encodeGguf(metadata, tensors);
}

export function writeTinyLlama(path: string, seed = 1, vocab = TINY_VOCAB): string {
  writeFileSync(path, tinyLlama(seed, vocab));
  return path;
}
