import { AccountLayerKey } from './account-layer';
import { fail, WatermarkError } from './errors';
import { type MasterKey, SchemeKey } from './keys';
import type { Scheme } from './scheme';
import { GumbelScheme, type GumbelSpec, gumbelKeyedSpec, readGumbelSpec } from './schemes/gumbel';
import { KgwScheme, type KgwSpec, kgwKeyedSpec, readKgwSpec } from './schemes/kgw';
import { readSynthIdSpec, SynthIdScheme, type SynthIdSpec } from './schemes/synthid';
import { canonicalJson, SpecReader } from './spec';

export type SchemeSpec = KgwSpec | GumbelSpec | SynthIdSpec;

interface SchemeDefinition {
  read(reader: SpecReader, raw: Record<string, unknown>): SchemeSpec;
  create(spec: SchemeSpec, key: SchemeKey, accountKey?: AccountLayerKey): Scheme;
  /** The part of the spec the key is derived from, where a field only shapes sampling (default: all of it). */
  keyed?(spec: SchemeSpec): object;
}

const SCHEMES: Record<string, SchemeDefinition> = {
  kgw: {
    read: readKgwSpec,
    create: (spec, key, accountKey) => new KgwScheme(spec as KgwSpec, key, accountKey),
    keyed: (spec) => kgwKeyedSpec(spec as KgwSpec),
  },
  // The Unigram watermark is KGW with an empty context; the spec is stored as kgw with contextWidth 0.
  unigram: {
    read: (_reader, raw) =>
      readKgwSpec(new SpecReader({ ...raw, scheme: 'kgw', contextWidth: 0 }, 'unigram')),
    create: (spec, key, accountKey) => new KgwScheme(spec as KgwSpec, key, accountKey),
    keyed: (spec) => kgwKeyedSpec(spec as KgwSpec),
  },
  gumbel: {
    read: readGumbelSpec,
    create: (spec, key) => new GumbelScheme(spec as GumbelSpec, key),
    keyed: (spec) => gumbelKeyedSpec(spec as GumbelSpec),
  },
  synthid: { read: readSynthIdSpec, create: (spec, key) => new SynthIdScheme(spec as SynthIdSpec, key) },
};

/** Names accepted in a spec's `scheme` field. */
export const SCHEME_NAMES = Object.keys(SCHEMES);

function definitionOf(name: unknown): SchemeDefinition {
  const definition = typeof name === 'string' && Object.hasOwn(SCHEMES, name) ? SCHEMES[name] : undefined;
  if (definition === undefined) {
    const shown = typeof name === 'string' ? `"${name.slice(0, 40)}"` : 'no scheme field';
    fail('E_UNKNOWN_SCHEME', `unknown scheme ${shown}; expected one of ${SCHEME_NAMES.join(', ')}`);
  }
  return definition;
}

/**
 * Validates a scheme spec (an object, or its JSON text) and returns it complete, with every default
 * written out, so that the canonical form names exactly one watermark.
 */
export function parseSpec(input: unknown): SchemeSpec {
  let raw = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input);
    } catch {
      fail('E_INVALID_SPEC', 'the scheme spec is not valid JSON');
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    fail('E_INVALID_SPEC', 'a scheme spec must be a JSON object with a "scheme" field');
  }
  const record = raw as Record<string, unknown>;
  const definition = definitionOf(record.scheme);
  return definition.read(new SpecReader(record, String(record.scheme)), record);
}

/** The canonical JSON of a spec: sorted keys, defaults filled. It names exactly one watermark. */
export function canonicalSpec(spec: unknown): string {
  return canonicalJson(parseSpec(spec));
}

/**
 * The canonical JSON a scheme's key is derived from: the canonical spec less any field that shapes sampling
 * only (Gumbel's `softness`), so that the detector's key does not depend on how the text was sampled.
 */
export function keyedSpec(spec: unknown): string {
  const parsed = parseSpec(spec);
  return canonicalJson(definitionOf(parsed.scheme).keyed?.(parsed) ?? parsed);
}

export interface CreateSchemeOptions {
  /** Derive a per-tenant key: the tenant's outputs carry a watermark of their own. */
  tenant?: string;
  /**
   * With a spec that has an account layer (`accountDelta`): the account whose layer the outputs carry beside the
   * organisation layer (account-layer.ts). Without it such a scheme embeds the organisation layer alone.
   */
  account?: string;
}

/** A keyed scheme: the spec is validated, and the scheme's key derived from the master key. */
export function createScheme(spec: unknown, master: MasterKey, options: CreateSchemeOptions = {}): Scheme {
  const parsed = parseSpec(spec);
  if (!master || typeof (master as MasterKey).deriveBytes !== 'function') {
    throw new WatermarkError(
      'E_KEY_FORMAT',
      'createScheme needs a MasterKey (use MasterKey.parse or MasterKey.generate)',
    );
  }
  const keyed = keyedSpec(parsed);
  const key = new SchemeKey(master, keyed, options.tenant);
  const layered = parsed.scheme === 'kgw' && parsed.accountDelta !== undefined;
  if (options.account !== undefined && !layered)
    fail('E_INVALID_SPEC', 'an account needs a kgw spec with an account layer (accountDelta > 0)');
  const accountKey = layered ? new AccountLayerKey(master, keyed, options.tenant) : undefined;
  const scheme = definitionOf(parsed.scheme).create(parsed, key, accountKey);
  return options.account === undefined ? scheme : (scheme as KgwScheme).forAccount(options.account);
}

/**
 * The account layer's key of a layered kgw spec (`accountDelta` > 0) under a master key and tenant: what
 * attribution scores candidate accounts with.
 */
export function accountLayerKey(spec: unknown, master: MasterKey, tenant?: string): AccountLayerKey {
  const parsed = parseSpec(spec);
  if (parsed.scheme !== 'kgw' || parsed.accountDelta === undefined)
    fail('E_INVALID_SPEC', 'the spec has no account layer: a kgw spec with accountDelta > 0 is needed');
  return new AccountLayerKey(master, keyedSpec(parsed), tenant);
}
