/**
 * Interoperability with the Python watermarking stacks: detect, and embed, the watermarks of
 * Hugging Face transformers (KGW and SynthID), jwkirchenbauer/lm-watermarking and
 * google-deepmind/synthid-text, bit for bit. Interop schemes are keyed by their spec's own integers
 * (hashingKey, the salt key of a seeding scheme, keys), not by a tracemark master key.
 */
import { fail } from '../errors';
import type { Scheme } from '../scheme';
import type { GreenListCacheOptions } from './greenlist';
import { HfKgwScheme, type HfKgwSpec, readHfKgwSpec } from './hf-kgw';
import { HfSynthIdScheme } from './hf-synthid';
import { LmwKgwScheme, type LmwKgwSpec, readLmwKgwSpec } from './lmw-kgw';
import { readSynthIdInteropSpec, type SynthIdInteropSpec } from './synthid-common';
import { SynthIdTextScheme } from './synthid-text';

export { GreenListCache, type GreenListCacheOptions, greenListSize } from './greenlist';
export {
  HF_KGW_DEFAULTS,
  type HfKgwDetection,
  HfKgwScheme,
  type HfKgwSpec,
  hfApproxPValue,
} from './hf-kgw';
export { HfSynthIdScheme, hfSynthIdSamplingTable } from './hf-synthid';
export {
  LMW_KGW_DEFAULTS,
  LMW_PRF_NAMES,
  type LmwKgwDetection,
  LmwKgwScheme,
  type LmwKgwSpec,
  type LmwPrfName,
  type LmwSeeding,
  lmwFixedTable,
  lmwPrf,
  lmwSeedingScheme,
} from './lmw-kgw';
export {
  SYNTHID_INTEROP_DEFAULTS,
  type SynthIdDetection,
  SynthIdInteropBase,
  type SynthIdInteropSpec,
  synthIdDepthWeights,
  tournamentUpdate,
} from './synthid-common';
export { SynthIdTextScheme, synthIdTextHashIv } from './synthid-text';
export { RandpermWorkspace, TORCH_DEFAULT_SEED, TorchGenerator, type Uint64Like } from './torch-random';

/** Names accepted in an interop spec's `scheme` field. */
export const INTEROP_SCHEME_NAMES = ['hf-kgw', 'lmw-kgw', 'hf-synthid', 'synthid-text'] as const;
export type InteropSchemeName = (typeof INTEROP_SCHEME_NAMES)[number];

export type InteropSpec = HfKgwSpec | LmwKgwSpec | SynthIdInteropSpec;
export type InteropScheme = HfKgwScheme | LmwKgwScheme | HfSynthIdScheme | SynthIdTextScheme;

/**
 * Validates an interop spec (an object, or its JSON text) and returns it complete, every default written out.
 * Field names are those of the reference configs, camel-cased (see each scheme's spec type).
 */
export function parseInteropSpec(input: unknown): InteropSpec {
  let raw = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input);
    } catch {
      fail('E_INVALID_SPEC', 'the interop spec is not valid JSON');
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    fail('E_INVALID_SPEC', 'an interop spec must be a JSON object with a "scheme" field');
  }
  const record = raw as Record<string, unknown>;
  switch (record.scheme) {
    case 'hf-kgw':
      return readHfKgwSpec(record);
    case 'lmw-kgw':
      return readLmwKgwSpec(record);
    case 'hf-synthid':
    case 'synthid-text':
      return readSynthIdInteropSpec(record, record.scheme);
    default: {
      const shown = typeof record.scheme === 'string' ? `"${record.scheme.slice(0, 40)}"` : 'no scheme field';
      return fail(
        'E_UNKNOWN_SCHEME',
        `unknown interop scheme ${shown}; expected one of ${INTEROP_SCHEME_NAMES.join(', ')}`,
      );
    }
  }
}

export interface InteropSchemeOptions extends GreenListCacheOptions {}

/**
 * A Scheme for an interop spec, usable with GenerationSession (embedding) and detectTokens (tracemark's
 * detection), and with its own `detect(ids)` that reproduces the reference detector.
 */
export function createInteropScheme(
  spec: unknown,
  options: InteropSchemeOptions = {},
): InteropScheme & Scheme {
  const parsed = parseInteropSpec(spec);
  switch (parsed.scheme) {
    case 'hf-kgw':
      return new HfKgwScheme(parsed, options);
    case 'lmw-kgw':
      return new LmwKgwScheme(parsed, options);
    case 'hf-synthid':
      return new HfSynthIdScheme(parsed);
    case 'synthid-text':
      return new SynthIdTextScheme(parsed);
  }
}
