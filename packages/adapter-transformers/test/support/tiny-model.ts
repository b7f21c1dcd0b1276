/**
 * A tiny real causal language model for transformers.js, made at test time: a one-layer, one-head
 * transformer (token embedding, causal self-attention with a KV cache and the attention mask, residual,
 * output head) with random weights, written as ONNX, plus a byte-level BPE `tokenizer.json` (token id =
 * byte value, 256 = `<|endoftext|>`). Laid out as a Hugging Face model folder:
 * `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`, `onnx/model.onnx`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeModel, FLOAT, type Graph, INT64, type Tensor } from './onnx-writer';

export const TINY_VOCAB = 257;
export const TINY_EOS = 256;
const HIDDEN = 32;

/** mulberry32 and Box-Muller: reproducible weights without any dependency. */
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

function weights(name: string, dims: number[], scale: number, rng: () => number): Tensor {
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = scale * rng();
  return { name, dims, data };
}

const int64s = (name: string, values: number[], dims = [values.length]): Tensor => ({
  name,
  dims,
  data: BigInt64Array.from(values.map(BigInt)),
});
const floats = (name: string, values: number[], dims = [values.length]): Tensor => ({
  name,
  dims,
  data: Float32Array.from(values),
});

/** `vocab` above 257 adds output ids with no text (for benchmarks at a real vocabulary size). */
export function tinyGraph(seed = 1, vocab = TINY_VOCAB): Graph {
  const rng = gaussian(seed);
  const d = HIDDEN;
  // The model writes printable ASCII (bytes 32..126) and (almost) never ends a text by itself, so that
  // its output round-trips through text exactly.
  const outBias = new Float32Array(vocab);
  for (let t = 0; t < TINY_VOCAB; t++) if (t < 32 || t > 126) outBias[t] = -20;
  return {
    name: 'tiny-causal-lm',
    initializers: [
      weights('embed', [vocab, d], 1, rng),
      weights('wq', [d, d], 1 / Math.sqrt(d), rng),
      weights('wk', [d, d], 1 / Math.sqrt(d), rng),
      weights('wv', [d, d], 1 / Math.sqrt(d), rng),
      weights('wo', [d, d], 1 / Math.sqrt(d), rng),
      weights('head', [d, vocab], 1.6 / Math.sqrt(d), rng),
      { name: 'head_bias', dims: [vocab], data: outBias },
      int64s('axis0', [0]),
      int64s('axis1', [1]),
      int64s('axes12', [1, 2]),
      floats('scale', [1 / Math.sqrt(d)], []),
      floats('one', [1], []),
      floats('big', [1e4], []),
    ],
    inputs: [
      { name: 'input_ids', elemType: INT64, shape: ['batch', 'seq'] },
      { name: 'attention_mask', elemType: INT64, shape: ['batch', 'total'] },
      { name: 'past_key_values.0.key', elemType: FLOAT, shape: ['batch', 1, 'past', d] },
      { name: 'past_key_values.0.value', elemType: FLOAT, shape: ['batch', 1, 'past', d] },
    ],
    outputs: [
      { name: 'logits', elemType: FLOAT, shape: ['batch', 'seq', vocab] },
      { name: 'present.0.key', elemType: FLOAT, shape: ['batch', 1, 'total', d] },
      { name: 'present.0.value', elemType: FLOAT, shape: ['batch', 1, 'total', d] },
    ],
    nodes: [
      { op: 'Gather', inputs: ['embed', 'input_ids'], outputs: ['x'] },
      { op: 'MatMul', inputs: ['x', 'wq'], outputs: ['q'] },
      { op: 'MatMul', inputs: ['x', 'wk'], outputs: ['k'] },
      { op: 'MatMul', inputs: ['x', 'wv'], outputs: ['v'] },
      { op: 'Unsqueeze', inputs: ['q', 'axis1'], outputs: ['q4'] },
      { op: 'Unsqueeze', inputs: ['k', 'axis1'], outputs: ['k4'] },
      { op: 'Unsqueeze', inputs: ['v', 'axis1'], outputs: ['v4'] },
      {
        op: 'Concat',
        inputs: ['past_key_values.0.key', 'k4'],
        outputs: ['present.0.key'],
        attributes: [{ name: 'axis', int: 2 }],
      },
      {
        op: 'Concat',
        inputs: ['past_key_values.0.value', 'v4'],
        outputs: ['present.0.value'],
        attributes: [{ name: 'axis', int: 2 }],
      },
      {
        op: 'Transpose',
        inputs: ['present.0.key'],
        outputs: ['kT'],
        attributes: [{ name: 'perm', ints: [0, 1, 3, 2] }],
      },
      { op: 'MatMul', inputs: ['q4', 'kT'], outputs: ['s0'] },
      { op: 'Mul', inputs: ['s0', 'scale'], outputs: ['s1'] },
      // Causal mask with a cache: query i (of s new ones) sees keys j ≤ i + (T − s).
      { op: 'Shape', inputs: ['input_ids'], outputs: ['sLen'], attributes: [{ name: 'start', int: 1 }] },
      { op: 'Shape', inputs: ['attention_mask'], outputs: ['tLen'], attributes: [{ name: 'start', int: 1 }] },
      { op: 'Concat', inputs: ['sLen', 'tLen'], outputs: ['st'], attributes: [{ name: 'axis', int: 0 }] },
      {
        op: 'ConstantOfShape',
        inputs: ['st'],
        outputs: ['ones'],
        attributes: [{ name: 'value', tensor: floats('v', [1], [1]) }],
      },
      { op: 'Sub', inputs: ['tLen', 'sLen'], outputs: ['diff'] },
      { op: 'Squeeze', inputs: ['diff', 'axis0'], outputs: ['offset'] },
      {
        op: 'Trilu',
        inputs: ['ones', 'offset'],
        outputs: ['causal'],
        attributes: [{ name: 'upper', int: 0 }],
      },
      { op: 'Cast', inputs: ['attention_mask'], outputs: ['amf'], attributes: [{ name: 'to', int: FLOAT }] },
      { op: 'Unsqueeze', inputs: ['amf', 'axes12'], outputs: ['am4'] },
      { op: 'Mul', inputs: ['causal', 'am4'], outputs: ['allowed'] },
      { op: 'Sub', inputs: ['allowed', 'one'], outputs: ['blocked'] },
      { op: 'Mul', inputs: ['blocked', 'big'], outputs: ['maskBias'] },
      { op: 'Add', inputs: ['s1', 'maskBias'], outputs: ['s2'] },
      { op: 'Softmax', inputs: ['s2'], outputs: ['p'], attributes: [{ name: 'axis', int: -1 }] },
      { op: 'MatMul', inputs: ['p', 'present.0.value'], outputs: ['o4'] },
      { op: 'Squeeze', inputs: ['o4', 'axis1'], outputs: ['o'] },
      { op: 'MatMul', inputs: ['o', 'wo'], outputs: ['o2'] },
      { op: 'Add', inputs: ['x', 'o2'], outputs: ['h'] },
      { op: 'MatMul', inputs: ['h', 'head'], outputs: ['l0'] },
      { op: 'Add', inputs: ['l0', 'head_bias'], outputs: ['logits'] },
    ],
  };
}

/** GPT-2's byte → printable character map, so that every byte is one token of a ByteLevel BPE. */
function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const map: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  }
  return map;
}

export function byteLevelTokenizer(): { tokenizer: object; config: object } {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((char, byte) => {
    vocab[char] = byte;
  });
  vocab['<|endoftext|>'] = TINY_EOS;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    tokenizer: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [
        {
          id: TINY_EOS,
          content: '<|endoftext|>',
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: true,
        },
      ],
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: null,
      decoder: byteLevel,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges: [],
      },
    },
    config: {
      tokenizer_class: 'GPT2Tokenizer',
      model_max_length: 4096,
      bos_token: '<|endoftext|>',
      eos_token: '<|endoftext|>',
      unk_token: '<|endoftext|>',
      pad_token: '<|endoftext|>',
      add_bos_token: false,
      padding_side: 'left',
    },
  };
}

/** Writes the model folder `<root>/<name>` and returns its path. */
export function writeTinyModel(root: string, name = 'tiny-lm', seed = 1, vocab = TINY_VOCAB): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  writeFileSync(join(dir, 'onnx', 'model.onnx'), encodeModel(tinyGraph(seed, vocab)));
  const json = (file: string, value: object) => writeFileSync(join(dir, file), JSON.stringify(value));
  json('config.json', {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    vocab_size: vocab,
    hidden_size: HIDDEN,
    num_attention_heads: 1,
    num_key_value_heads: 1,
    num_hidden_layers: 1,
    max_position_embeddings: 4096,
    bos_token_id: TINY_EOS,
    eos_token_id: TINY_EOS,
    pad_token_id: TINY_EOS,
    'transformers.js_config': { dtype: 'fp32' },
  });
  json('generation_config.json', { bos_token_id: TINY_EOS, eos_token_id: TINY_EOS, pad_token_id: TINY_EOS });
  const { tokenizer, config } = byteLevelTokenizer();
  json('tokenizer.json', tokenizer);
  json('tokenizer_config.json', config);
  return dir;
}
