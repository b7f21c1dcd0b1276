import { fail } from '../errors';
import { kolmogorovSmirnovUniform } from '../stats/index';

/**
 * What `tracemark report` reads from the object that `tracemark verify --json` prints. Fields not named here
 * are ignored; every field named here without `?` is required, and a missing or mistyped one is a one-line
 * E_INPUT error naming it.
 */
export interface VerifySummary {
  /** Exact p-value of the whole test, and its log10 (finite where the double underflows). */
  pValue: number;
  log10PValue: number;
  /** Output tokens seen and those that counted. */
  seen: number;
  scored: number;
  /** p-values of the negative controls (other keys, or unwatermarked text) and their uniformity test. */
  controls: { pValues: number[]; ks: KsSummary | null };
  /** Per-tenant attribution with Holm-adjusted p-values, where tenants were tested. */
  tenants?: TenantRow[];
  /** log10 p against the number of scored tokens. */
  trajectory: { scored: number; log10PValue: number }[];
  spec: Record<string, unknown>;
  keyFingerprint: string;
  masterFingerprint?: string;
  tokenizer: string;
  /** The stored responses that were scored: how many, and the SHA-256 of each. */
  responses: { count: number; sha256: string[] };
  /** Stored outputs to show with their tokens marked, where the verify object carries them. */
  samples?: SampleText[];
  /** The owner-text filter the test ran with (`verify --owner-text`), if any. */
  ownerFilter?: OwnerFilterSummary;
  /**
   * The p-value the verdict cites and whether the controls passed. A verify object without a `verdict` (older
   * or another tool's) cites the anytime-valid p when `stoppedBySequentialTest` is true, else the exact p.
   */
  verdict: VerdictSummary;
  /** Which model was probed, where and when, where the verify object says so. */
  suspect?: SuspectSummary;
  /**
   * How the evidence was gathered: 'closed' (the suspect's answers to probes were scored) or 'read' (its top-1
   * predictions on the owner's texts, Sander et al.'s open-model setting). A verify object without `mode` is closed.
   */
  mode: 'closed' | 'read';
}

export interface VerdictSummary {
  basis: 'fixed' | 'anytime';
  pValueCited: number;
  log10PValueCited: number;
  controlsPassed: boolean;
}

export interface SuspectSummary {
  /** The model the probes asked for (null where unknown) and what the endpoint reported (name → responses). */
  requestedModel: string | null;
  reportedModels: Record<string, number>;
  /** Endpoints without credentials: user info, query string and fragment are removed. */
  endpoints: string[];
  /** When the first request was sent and the last answer received (ISO 8601), where known. */
  probeDates: { first: string | null; last: string | null };
  responses: number;
  tokens: { seen: number; scored: number };
}

/** Which owner text selected the scored tokens: its documents' SHA-256, the window width, the windows. */
export interface OwnerFilterSummary {
  source: string;
  documents: number;
  sha256: string;
  width: number;
  windows: number;
}

export interface KsSummary {
  statistic?: number;
  pValue: number;
}

export interface TenantRow {
  id: string;
  pValue: number;
  adjustedPValue: number;
  log10PValue?: number;
  adjustedLog10PValue?: number;
}

export interface SampleText {
  id: string;
  text: string;
  prompt?: string;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function need(condition: boolean, source: string, field: string, expected: string): asserts condition {
  if (!condition) fail('E_INPUT', `${source}: field "${field}" is missing or not ${expected}`);
}

function number(object: Json, field: string, source: string, path = field): number {
  const value = object[field];
  need(typeof value === 'number' && Number.isFinite(value), source, path, 'a finite number');
  return value;
}

function count(object: Json, field: string, source: string, path = field): number {
  const value = number(object, field, source, path);
  need(Number.isInteger(value) && value >= 0, source, path, 'a non-negative integer');
  return value;
}

function probability(object: Json, field: string, source: string, path = field): number {
  const value = number(object, field, source, path);
  need(value >= 0 && value <= 1, source, path, 'a probability in [0, 1]');
  return value;
}

function string(object: Json, field: string, source: string, path = field): string {
  const value = object[field];
  need(typeof value === 'string' && value.length > 0, source, path, 'a non-empty string');
  return value;
}

function optionalNumber(object: Json, field: string): number | undefined {
  const value = object[field];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** A p-value's log10, from the given log10 where there is one, else from the p-value where it is positive. */
function log10Of(p: number, log10: number | undefined): number | undefined {
  if (log10 !== undefined) return log10;
  return p > 0 ? Math.log10(p) : undefined;
}

/** Validates the verify object; `source` names it in errors (e.g. the file name). */
export function parseVerifySummary(value: unknown, source: string): VerifySummary {
  if (!isObject(value))
    fail('E_INPUT', `${source}: expected the JSON object printed by tracemark verify --json`);
  const pValue = probability(value, 'pValue', source);
  const log10PValue = number(value, 'log10PValue', source);
  const seen = count(value, 'seen', source);
  const scored = count(value, 'scored', source);

  const controls = value.controls;
  need(isObject(controls), source, 'controls', 'an object { pValues, ks }');
  const pValues = controls.pValues;
  need(
    Array.isArray(pValues) && pValues.every((p) => typeof p === 'number' && p >= 0 && p <= 1),
    source,
    'controls.pValues',
    'an array of probabilities',
  );
  let ks: KsSummary | null = null;
  if (typeof controls.ks === 'number') {
    ks = { pValue: probability(controls, 'ks', source, 'controls.ks') };
  } else if (isObject(controls.ks)) {
    ks = {
      pValue: probability(controls.ks, 'pValue', source, 'controls.ks.pValue'),
      ...(optionalNumber(controls.ks, 'statistic') === undefined
        ? {}
        : { statistic: optionalNumber(controls.ks, 'statistic') }),
    };
  } else {
    need(controls.ks === null || controls.ks === undefined, source, 'controls.ks', 'a KS result');
    // Without one, the uniformity test is computed here from the controls' p-values.
    if (pValues.length > 0) ks = kolmogorovSmirnovUniform(pValues as number[]);
  }

  let tenants: TenantRow[] | undefined;
  if (value.tenants !== undefined && value.tenants !== null) {
    need(Array.isArray(value.tenants), source, 'tenants', 'an array');
    tenants = value.tenants.map((row, i) => {
      const path = `tenants[${i}]`;
      need(isObject(row), source, path, 'an object { id, pValue, adjustedPValue }');
      const p = probability(row, 'pValue', source, `${path}.pValue`);
      const adjusted = probability(row, 'adjustedPValue', source, `${path}.adjustedPValue`);
      const id = row.id;
      need(typeof id === 'string' || typeof id === 'number', source, `${path}.id`, 'a tenant id');
      const log10 = log10Of(p, optionalNumber(row, 'log10PValue'));
      const adjustedLog10 = log10Of(adjusted, optionalNumber(row, 'adjustedLog10PValue'));
      return {
        id: String(id),
        pValue: p,
        adjustedPValue: adjusted,
        ...(log10 === undefined ? {} : { log10PValue: log10 }),
        ...(adjustedLog10 === undefined ? {} : { adjustedLog10PValue: adjustedLog10 }),
      };
    });
  }

  need(Array.isArray(value.trajectory), source, 'trajectory', 'an array of { scored, log10PValue }');
  const trajectory = value.trajectory.map((point, i) => {
    const path = `trajectory[${i}]`;
    need(isObject(point), source, path, 'an object { scored, log10PValue }');
    return {
      scored: count(point, 'scored', source, `${path}.scored`),
      log10PValue: number(point, 'log10PValue', source, `${path}.log10PValue`),
    };
  });

  need(isObject(value.spec), source, 'spec', 'a scheme spec object');
  const keyFingerprint = string(value, 'keyFingerprint', source);
  const masterFingerprint = typeof value.masterFingerprint === 'string' ? value.masterFingerprint : undefined;
  const tokenizer = string(value, 'tokenizer', source);

  const responses = value.responses;
  need(isObject(responses), source, 'responses', 'an object { count, sha256 }');
  const responseCount = count(responses, 'count', source, 'responses.count');
  const hashes = responses.sha256;
  need(
    Array.isArray(hashes) && hashes.every((h) => typeof h === 'string' && /^[0-9a-f]{64}$/i.test(h)),
    source,
    'responses.sha256',
    'an array of SHA-256 hex digests',
  );

  const verdict = verdictOf(value, pValue, log10PValue, ks, source);
  const suspect = suspectOf(value, responses, { count: responseCount, seen, scored }, source);
  const mode = value.mode ?? 'closed';
  need(mode === 'closed' || mode === 'read', source, 'mode', '"closed" or "read"');

  return {
    pValue,
    log10PValue,
    seen,
    scored,
    controls: { pValues: pValues as number[], ks },
    ...(tenants === undefined ? {} : { tenants }),
    trajectory,
    spec: value.spec,
    keyFingerprint,
    ...(masterFingerprint === undefined ? {} : { masterFingerprint }),
    tokenizer,
    responses: { count: responseCount, sha256: (hashes as string[]).map((h) => h.toLowerCase()) },
    ...(value.samples === undefined ? {} : { samples: sampleTexts(value.samples, source) }),
    ...(value.ownerFilter === undefined || value.ownerFilter === null
      ? {}
      : { ownerFilter: ownerFilterOf(value.ownerFilter, source) }),
    verdict,
    ...(suspect === undefined ? {} : { suspect }),
    mode: mode as 'closed' | 'read',
  };
}

/** The default `--controls-alpha` of verify: below it the controls' KS test fails. */
const CONTROLS_ALPHA = 0.01;

function verdictOf(
  value: Json,
  pValue: number,
  log10PValue: number,
  ks: KsSummary | null,
  source: string,
): VerdictSummary {
  const stopped = value.stoppedBySequentialTest === true;
  if (isObject(value.verdict) && value.verdict.basis !== undefined) {
    const v = value.verdict;
    need(v.basis === 'fixed' || v.basis === 'anytime', source, 'verdict.basis', '"fixed" or "anytime"');
    // After a stop on the e-process only the anytime-valid p-value is valid.
    need(!stopped || v.basis === 'anytime', source, 'verdict.basis', '"anytime" after a sequential stop');
    need(typeof v.controlsPassed === 'boolean', source, 'verdict.controlsPassed', 'a boolean');
    return {
      basis: v.basis,
      pValueCited: probability(v, 'pValueCited', source, 'verdict.pValueCited'),
      log10PValueCited: number(v, 'log10PValueCited', source, 'verdict.log10PValueCited'),
      controlsPassed: v.controlsPassed,
    };
  }
  let basis: VerdictSummary['basis'] = 'fixed';
  let log10PValueCited = log10PValue;
  let pValueCited = pValue;
  if (stopped) {
    need(isObject(value.sequential), source, 'sequential', 'an object { log10AnytimePValue }');
    basis = 'anytime';
    log10PValueCited = Math.min(
      0,
      number(value.sequential, 'log10AnytimePValue', source, 'sequential.log10AnytimePValue'),
    );
    pValueCited = 10 ** log10PValueCited;
  }
  const controls = value.controls as Json;
  const passed =
    typeof controls.passed === 'boolean' ? controls.passed : ks !== null && ks.pValue >= CONTROLS_ALPHA;
  return { basis, pValueCited, log10PValueCited, controlsPassed: passed };
}

/** An endpoint without what could carry a credential: user info in the authority, query and fragment. */
export function redactEndpoint(endpoint: string): string {
  return endpoint.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1').replace(/[?#].*$/s, '');
}

function suspectOf(
  value: Json,
  responses: Json,
  counts: { count: number; seen: number; scored: number },
  source: string,
): SuspectSummary | undefined {
  const given = isObject(value.suspect) ? value.suspect : undefined;
  // Older verify objects carry the same facts at the top level and under `responses`.
  const models = given?.reportedModels ?? value.reportedModels;
  if (models === undefined) return undefined;
  const path = given === undefined ? 'reportedModels' : 'suspect.reportedModels';
  need(
    isObject(models) && Object.values(models).every((n) => Number.isInteger(n) && (n as number) >= 0),
    source,
    path,
    'an object of response counts',
  );
  const endpoints = given?.endpoints ?? responses.endpoints ?? [];
  need(
    Array.isArray(endpoints) && endpoints.every((e) => typeof e === 'string'),
    source,
    given === undefined ? 'responses.endpoints' : 'suspect.endpoints',
    'an array of strings',
  );
  const dates = isObject(given?.probeDates) ? given.probeDates : undefined;
  const first = dates?.first ?? responses.firstRequestedAt ?? null;
  const last = dates?.last ?? responses.lastReceivedAt ?? null;
  need(first === null || typeof first === 'string', source, 'suspect.probeDates.first', 'a date');
  need(last === null || typeof last === 'string', source, 'suspect.probeDates.last', 'a date');
  const requested = given?.requestedModel ?? value.model ?? null;
  return {
    requestedModel: typeof requested === 'string' ? requested : null,
    reportedModels: models as Record<string, number>,
    endpoints: [...new Set((endpoints as string[]).map(redactEndpoint))],
    probeDates: { first, last },
    responses: counts.count,
    tokens: { seen: counts.seen, scored: counts.scored },
  };
}

function ownerFilterOf(value: unknown, source: string): OwnerFilterSummary {
  need(isObject(value), source, 'ownerFilter', 'an object { source, documents, sha256, width, windows }');
  const sha256 = string(value, 'sha256', source, 'ownerFilter.sha256');
  need(/^[0-9a-f]{64}$/.test(sha256), source, 'ownerFilter.sha256', 'a SHA-256 hex digest');
  return {
    source: string(value, 'source', source, 'ownerFilter.source'),
    documents: count(value, 'documents', source, 'ownerFilter.documents'),
    sha256,
    width: count(value, 'width', source, 'ownerFilter.width'),
    windows: count(value, 'windows', source, 'ownerFilter.windows'),
  };
}

const TEXT_FIELDS = ['text', 'output', 'response', 'completion'] as const;

/**
 * Stored outputs in the verify object: strings, or objects with a text in `text`, `output`, `response` or
 * `completion` (and optionally `id` and a `prompt` string). Entries in any other shape are skipped: they are
 * only shown, never part of the evidence.
 */
function sampleTexts(value: unknown, source: string): SampleText[] {
  if (!Array.isArray(value)) fail('E_INPUT', `${source}: field "samples" is not an array`);
  const out: SampleText[] = [];
  value.forEach((entry, i) => {
    if (typeof entry === 'string') {
      out.push({ id: `sample ${i + 1}`, text: entry });
      return;
    }
    if (!isObject(entry)) return;
    const field = TEXT_FIELDS.find((f) => typeof entry[f] === 'string');
    if (field === undefined) return;
    const id =
      typeof entry.id === 'string' || typeof entry.id === 'number' ? String(entry.id) : `sample ${i + 1}`;
    out.push({
      id,
      text: entry[field] as string,
      ...(typeof entry.prompt === 'string' ? { prompt: entry.prompt } : {}),
    });
  });
  return out;
}
