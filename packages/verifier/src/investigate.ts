import { createScheme, type MasterKey, parseSpec, type Scheme } from '@tracemark/watermark';
import { CONTROL_CONTEXT, controlMasterKey, controlTenant, labelUniform } from './controls';
import { fail } from './errors';
import { formatPValue } from './format';
import { type KeyRequest, scoreKeys } from './multikey';
import { nullTail, randomizedPValue } from './null-law';
import { type RadioactivityResult, radioactivityTape, radioactivityTest } from './radioactivity';
import { type ReadingSkips, type ReadText, readingTape, readingTest } from './reading';
import type { TestResult } from './result';
import { EProcess, type SequentialState } from './sequential';
import { holmAdjustLog10, kolmogorovSmirnovUniform } from './stats/index';
import type { SuspectSample, WindowFilter } from './tape';

/**
 * `tracemark verify` without the files: the radioactivity test of a suspect's outputs for the owner's key, the
 * same test under never-used control keys (whose p-values must look uniform), optional attribution across
 * tenant keys with Holm-adjusted p-values, and the anytime-valid e-process over the same tape.
 */
export interface InvestigateOptions {
  spec: unknown;
  key: MasterKey;
  /** Tenant ids to test for attribution (keys derived from the master key by HKDF). */
  tenants?: string[];
  /** Number of control keys (default 50, at least 20). */
  controls?: number;
  /** Level of the verdict (default 1e-3). */
  alpha?: number;
  /** The controls fail when the Kolmogorov-Smirnov p-value of their p-values is below this (default 0.01). */
  controlsAlpha?: number;
  filter?: WindowFilter;
  /** Worker threads for scoring many keys (default: automatic). */
  threads?: number;
  /** Prior strength of the e-process (see EProcess). */
  priorStrength?: number;
  /** The owner's test (and every key scored on its tape) stops after this many scored tokens. */
  maxScored?: number;
  /** Points of the owner's p-value trajectory per decade of scored tokens (default 8). */
  trajectoryPointsPerDecade?: number;
  /**
   * How collecting the evidence was stopped: 'fixed' (a budget set in advance; the default) or 'anytime'
   * (probing stopped when the e-process reached 1/α). After an anytime stop the fixed-size p-value is
   * optimistic, so the verdict cites the e-process's anytime-valid p-value instead.
   */
  stopping?: StoppingRule;
}

export type StoppingRule = 'fixed' | 'anytime';

/** The decision, and the one p-value it rests on: cite `pValueCited`, never another. */
export interface Verdict {
  /** The controls passed and the cited p-value is at most α. */
  detected: boolean;
  pValueCited: number;
  log10PValueCited: number;
  /** 'fixed': the exact fixed-size p-value; 'anytime': min(1, 1 / max E) of the e-process. */
  basis: StoppingRule;
  controlsPassed: boolean;
  text: string;
}

export interface ControlReport {
  count: number;
  /** How the control keys were made (never the owner's tenants). */
  derivation: string;
  keyFingerprints: string[];
  pValues: number[];
  log10PValues: number[];
  /**
   * Kolmogorov-Smirnov test of the controls' p-values against Uniform(0, 1). For discrete null laws the test
   * uses randomized p-values (exactly uniform under H0; the randomization is fixed by each key's fingerprint).
   */
  uniformity: { test: 'kolmogorov-smirnov'; statistic: number; pValue: number; randomized: boolean };
  /** The same test's statistic and p-value, under the name `tracemark report` reads. */
  ks: { statistic: number; pValue: number };
  alpha: number;
  passed: boolean;
  /** Smallest control p-value, and how many controls are at or below the owner's p-value. */
  minPValue: number;
  atOrBelowOwner: number;
}

export interface TenantReport {
  id: string;
  keyFingerprint: string;
  scored: number;
  scoreSum: number;
  pValue: number;
  log10PValue: number;
  adjustedPValue: number;
  adjustedLog10PValue: number;
}

export interface InvestigateResult extends TestResult {
  /**
   * How the evidence was gathered: 'closed', the suspect's own outputs; 'read', its predictions while reading
   * the owner's texts (`investigateReading`).
   */
  mode: 'closed' | 'read';
  /** Reading mode: owner texts and positions read, and the positions the reading rule dropped. */
  reading?: { texts: number; positions: number; skipped: ReadingSkips };
  seen: number;
  skipped: RadioactivityResult['skipped'];
  /** Suspect outputs (prompt, output pairs) tested. */
  sampleCount: number;
  trajectory: RadioactivityResult['trajectory'];
  /** The e-process over the same scored tokens in stored order (valid under optional stopping). */
  sequential: SequentialState & { priorStrength: number };
  controls: ControlReport;
  tenants?: TenantReport[];
  alpha: number;
  verdict: Verdict;
  /** Milliseconds spent, and the worker threads that scored the control and tenant keys (1: this thread). */
  timings: { tapeMs: number; controlsMs: number; tenantsMs: number; threads: number };
}

export const DEFAULT_CONTROLS = 50;
export const MIN_CONTROLS = 20;

/** Where the evidence comes from: the suspect's outputs, or its predictions on the owner's texts. */
type Evidence = { mode: 'closed'; samples: SuspectSample[] } | { mode: 'read'; texts: readonly ReadText[] };

export function investigate(
  samples: SuspectSample[],
  options: InvestigateOptions,
): Promise<InvestigateResult> {
  return investigateEvidence({ mode: 'closed', samples }, options);
}

/**
 * The investigation of an open-weight (or log-probability) suspect in reading mode (Sander et al. 2024,
 * open-model setting): the suspect's top-1 predictions on the owner's watermarked texts, tested exactly as
 * `investigate` tests outputs, with the same controls, tenants and e-process (see reading.ts for the rule).
 */
export function investigateReading(
  texts: readonly ReadText[],
  options: Omit<InvestigateOptions, 'filter'>,
): Promise<InvestigateResult> {
  if ((options as InvestigateOptions).filter !== undefined)
    fail('E_INVALID_OPTIONS', "reading mode reads the owner's own texts: a window filter does not apply");
  return investigateEvidence({ mode: 'read', texts }, options);
}

async function investigateEvidence(
  evidence: Evidence,
  options: InvestigateOptions,
): Promise<InvestigateResult> {
  const spec = parseSpec(options.spec);
  const owner = createScheme(spec, options.key);
  const controlCount = options.controls ?? DEFAULT_CONTROLS;
  if (!(Number.isInteger(controlCount) && controlCount >= MIN_CONTROLS && controlCount <= 10_000)) {
    fail(
      'E_INVALID_OPTIONS',
      `controls must be an integer from ${MIN_CONTROLS} to 10000; got ${controlCount}`,
    );
  }
  const alpha = options.alpha ?? 1e-3;
  const controlsAlpha = options.controlsAlpha ?? 0.01;
  const tenants = options.tenants ?? [];
  const stopping = options.stopping ?? 'fixed';
  if (stopping !== 'fixed' && stopping !== 'anytime') {
    fail('E_INVALID_OPTIONS', `stopping must be 'fixed' or 'anytime'; got ${String(stopping)}`);
  }

  let started = performance.now();
  // One tape: the owner's test, its e-process (in stored order) and every other key's sum are scored on it.
  const testOptions = {
    maxScored: options.maxScored,
    trajectoryPointsPerDecade: options.trajectoryPointsPerDecade,
  };
  let reading: InvestigateResult['reading'];
  let owned: ReturnType<typeof radioactivityTape>;
  if (evidence.mode === 'closed') {
    owned = radioactivityTape(evidence.samples, { scheme: owner, filter: options.filter, ...testOptions });
  } else {
    const { result: read, ...rest } = readingTape(evidence.texts, { scheme: owner, ...testOptions });
    const { mode: _mode, texts, positions, reading: skipped, ...closedShape } = read;
    reading = { texts, positions, skipped };
    owned = { ...rest, result: closedShape };
  }
  const { tape, scores, result } = owned;
  // A key whose tape counts other positions (a keyed PRF context) gets a test of its own, in the same mode.
  const testUnder = (scheme: Scheme) =>
    evidence.mode === 'closed'
      ? radioactivityTest(evidence.samples, { scheme, filter: options.filter, trajectoryPointsPerDecade: 1 })
      : readingTest(evidence.texts, { scheme, trajectoryPointsPerDecade: 1 });
  const independent = tape.keyIndependent;
  const eProcess = new EProcess(owner.nullLaw, { priorStrength: options.priorStrength });
  for (let j = 0; j < scores.length; j++) eProcess.push(scores[j]);
  const tapeMs = performance.now() - started;
  if (result.scored === 0) {
    fail(
      'E_TOO_SHORT',
      'no output token could be scored: the stored outputs are empty or repeat their prompts',
    );
  }

  // Controls and tenants: one pass of the shared tape per key (or a test per key when the tape is keyed).
  const controlMaster = controlMasterKey(options.key);
  const requests: KeyRequest[] = [
    ...Array.from({ length: controlCount }, (_, i) => ({ master: 1, tenant: controlTenant(i) })),
    ...tenants.map((tenant) => ({ master: 0, tenant })),
  ];
  started = performance.now();
  let keyed: { sum: number; scored: number }[];
  let threads = 1;
  if (independent) {
    const scored = await scoreKeys(tape, spec, [options.key, controlMaster], requests, {
      threads: options.threads,
    });
    threads = scored.threads;
    keyed = scored.sums.map((sum) => ({ sum, scored: result.scored }));
  } else {
    keyed = requests.map((r) => {
      const scheme = createScheme(spec, r.master === 0 ? options.key : controlMaster, tenantOf(r));
      const test = testUnder(scheme);
      return { sum: test.scoreSum, scored: test.scored };
    });
  }
  const scoringMs = performance.now() - started;

  const controlSchemes: Scheme[] = requests
    .slice(0, controlCount)
    .map((r) => createScheme(spec, controlMaster, tenantOf(r)));
  const controlKeyed = keyed.slice(0, controlCount);
  const controlTails = controlKeyed.map(({ sum, scored }) => nullTail(owner.nullLaw, sum, scored));
  const randomized = owner.nullLaw.kind !== 'exponential';
  const uniformInputs = controlKeyed.map(({ sum, scored }, i) =>
    randomizedPValue(owner.nullLaw, sum, scored, labelUniform(controlSchemes[i].keyFingerprint)),
  );
  const ks = kolmogorovSmirnovUniform(uniformInputs);
  const controlsPassed = ks.pValue >= controlsAlpha;
  const controls: ControlReport = {
    count: controlCount,
    derivation: `tenants control-0 … control-${controlCount - 1} of the control master key deriveBytes('controls', '${CONTROL_CONTEXT}')`,
    keyFingerprints: controlSchemes.map((s) => s.keyFingerprint),
    pValues: controlTails.map((t) => t.p),
    log10PValues: controlTails.map((t) => t.log10p),
    uniformity: { test: 'kolmogorov-smirnov', statistic: ks.statistic, pValue: ks.pValue, randomized },
    ks: { statistic: ks.statistic, pValue: ks.pValue },
    alpha: controlsAlpha,
    passed: controlsPassed,
    minPValue: Math.min(...controlTails.map((t) => t.p)),
    atOrBelowOwner: controlTails.filter((t) => t.log10p <= result.log10PValue).length,
  };

  let tenantReports: TenantReport[] | undefined;
  if (tenants.length > 0) {
    const tails = keyed
      .slice(controlCount)
      .map(({ sum, scored }) => ({ scored, sum, tail: nullTail(owner.nullLaw, sum, scored) }));
    const adjusted = holmAdjustLog10(tails.map((t) => t.tail.log10p));
    tenantReports = tenants.map((id, i) => ({
      id,
      keyFingerprint: createScheme(spec, options.key, { tenant: id }).keyFingerprint,
      scored: tails[i].scored,
      scoreSum: tails[i].sum,
      pValue: tails[i].tail.p,
      log10PValue: tails[i].tail.log10p,
      adjustedPValue: 10 ** adjusted[i],
      adjustedLog10PValue: adjusted[i],
    }));
  }

  const sequential = eProcess.state;
  const { samples: sampleCount, ...test } = result;
  return {
    ...test,
    mode: evidence.mode,
    ...(reading === undefined ? {} : { reading }),
    sampleCount,
    sequential: { ...sequential, priorStrength: eProcess.priorStrength },
    controls,
    ...(tenantReports === undefined ? {} : { tenants: tenantReports }),
    alpha,
    verdict: citeVerdict({
      pValue: result.pValue,
      log10PValue: result.log10PValue,
      log10AnytimePValue: sequential.log10AnytimePValue,
      stopping,
      controls,
      alpha,
      mode: evidence.mode,
    }),
    timings: {
      tapeMs,
      controlsMs: (scoringMs * controlCount) / requests.length,
      tenantsMs: (scoringMs * tenants.length) / requests.length,
      threads,
    },
  };
}

function tenantOf(request: KeyRequest): { tenant?: string } {
  return request.tenant === undefined ? {} : { tenant: request.tenant };
}

/**
 * The verdict from the p-value the stopping rule allows and the controls: failed controls make it
 * inconclusive whatever the p-value, since the test is then not calibrated on this evidence.
 */
export function citeVerdict(input: {
  pValue: number;
  log10PValue: number;
  log10AnytimePValue: number;
  stopping: StoppingRule;
  controls: Pick<ControlReport, 'count' | 'passed' | 'alpha'> & { uniformity: { pValue: number } };
  alpha: number;
  /** How the evidence was gathered (default closed): the verdict says what carries the watermark. */
  mode?: 'closed' | 'read';
}): Verdict {
  const { stopping, controls, alpha } = input;
  if (stopping !== 'fixed' && stopping !== 'anytime') {
    fail('E_INVALID_OPTIONS', `stopping must be 'fixed' or 'anytime'; got ${String(stopping)}`);
  }
  const log10PValueCited = stopping === 'anytime' ? input.log10AnytimePValue : input.log10PValue;
  const pValueCited = stopping === 'anytime' ? 10 ** log10PValueCited : input.pValue;
  const significant = log10PValueCited <= Math.log10(alpha);
  const detected = controls.passed && significant;
  const cited = `${stopping === 'anytime' ? 'anytime-valid p' : 'exact p'} = ${formatPValue(pValueCited, log10PValueCited)}${stopping === 'anytime' ? ', as probing stopped on the e-process' : ''}`;
  const ks = `KS p = ${formatSmall(controls.uniformity.pValue)}`;
  let text: string;
  if (!controls.passed) {
    text = `inconclusive (${cited}): the ${controls.count} control keys FAILED: their p-values are not uniform (${ks} < ${controls.alpha}); the test is not calibrated on this evidence, so its p-value cannot support a detection`;
  } else if (detected) {
    const carrier =
      input.mode === 'read'
        ? "the suspect's predictions on the owner's texts carry this key's watermark (reading mode)"
        : "the suspect's outputs carry this key's watermark";
    text = `watermark detected at α = ${formatAlpha(alpha)} (${cited}): ${carrier}; the ${controls.count} control keys behave as chance (${ks})`;
  } else {
    text = `no watermark detected at α = ${formatAlpha(alpha)} (${cited}); the ${controls.count} control keys behave as chance (${ks})`;
  }
  return { detected, pValueCited, log10PValueCited, basis: stopping, controlsPassed: controls.passed, text };
}

function formatAlpha(alpha: number): string {
  return alpha >= 1e-3 ? String(alpha) : alpha.toExponential();
}

function formatSmall(p: number): string {
  return p >= 1e-3 ? p.toPrecision(3) : p.toExponential(2);
}
