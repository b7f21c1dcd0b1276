import { createHash } from 'node:crypto';
import {
  EvidenceStore,
  parseCompletion,
  type RunRecord,
  readBinding,
  sampleOf,
  sha256Hex,
  storedReadTexts,
} from '@tracemark/evidence';
import {
  buildWindowFilter,
  DEFAULT_CONTROLS,
  formatPValue,
  type InvestigateResult,
  investigate,
  investigateReading,
  jsonArgument,
  loadTokenizer,
  type OwnerFilterSummary,
  parseTenantList,
  readKeyFile,
  readTextFile,
  redactEndpoint,
  type SuspectSample,
  type SuspectSummary,
  type Tokenizer,
  type WindowFilter,
} from '@tracemark/verifier';
import { parseSpec } from '@tracemark/watermark';
import { fail } from '../errors';
import { corpusDocuments } from '../scan/sources';

/** The filter width that worked best in the lab (docs/radioactivity.md, "filter width"). */
const DEFAULT_FILTER_WIDTH = 4;

/** The options of `tracemark verify`, as commander parses them (declared in main.ts). */
export interface VerifyOptions {
  store?: string;
  keyFile?: string;
  spec?: string;
  tenants?: string;
  tokenizer: string;
  controls?: string;
  alpha: string;
  controlsAlpha: string;
  threads?: string;
  ownerText?: string;
  filterWidth?: string;
  failOnDetect?: boolean;
  json?: boolean;
}

const SAMPLES_SHOWN = 3;

/** What `tracemark verify --json` prints: the investigation and the evidence it rests on. */
export interface VerifyReport extends Omit<InvestigateResult, 'timings'> {
  command: 'verify';
  store: string;
  /** The model the probes asked for, and what the endpoint reported (name → responses). */
  model: string | null;
  reportedModels: Record<string, number>;
  tokenizer: string;
  /**
   * The owner-text filter (`--owner-text`): only tokens whose preceding `width` tokens occur in the owner's
   * own watermarked outputs were scored; null when the test ran without it.
   */
  ownerFilter: OwnerFilterSummary | null;
  responses: {
    count: number;
    /** SHA-256 of each stored response body, in store order; every one was checked against its body. */
    sha256: string[];
    endpoints: string[];
    firstRequestedAt: string | null;
    lastReceivedAt: string | null;
  };
  /** The probe runs that filled the store, with their settings and outcomes. */
  runs: RunRecord[];
  /**
   * Whether a probe stopped when its e-process reached 1/α (`probe --until-alpha`). After such a stop the
   * fixed-size p-value is optimistic; the anytime-valid p-value (`sequential`) is the one to cite.
   */
  stoppedBySequentialTest: boolean;
  /**
   * The suspect as the evidence names it, for the report: the model the endpoint reported, the endpoints
   * without credentials, the probe dates and how much was tested.
   */
  suspect: SuspectSummary;
  /** A few stored outputs (the first in store order), for a report to show. */
  samples: { id: string; prompt: string; text: string }[];
  /**
   * Reading mode (`tracemark read` filled the store): where the predictions came from, the windows and the
   * texts (by the SHA-256 of their token ids); `responses` then lists the stored windows' bodies.
   */
  readingEvidence?: {
    sourceKind: string;
    source: string;
    tokenizer: string;
    context: number;
    overlap: number;
    texts: { id: string; name: string; tokens: number; positionsRead: number }[];
    windows: number;
    /** Texts whose windows were not all read (a read stopped early): scored up to their first unread window. */
    incompleteTexts: number;
  };
  timings: InvestigateResult['timings'] & { readMs: number; tokenizeMs: number };
}

/**
 * The window filter of Sander et al. 2024 (§4.2) from the owner's own watermarked outputs: a file or a
 * directory of them, one document per file, or JSON Lines records with a "text" field in `.jsonl` files.
 */
async function ownerFilter(
  path: string,
  tokenizer: Tokenizer,
  width: number,
): Promise<{ filter: WindowFilter; summary: OwnerFilterSummary }> {
  const texts: ArrayLike<number>[] = [];
  const jsonl = path.endsWith('.jsonl');
  // The evidence names the owner text by a hash of its documents (each as UTF-8, then a 0 byte), in order.
  const hash = createHash('sha256');
  for await (const document of corpusDocuments(path, { jsonl })) {
    texts.push(tokenizer.encodeIds?.(document.text) ?? tokenizer.encode(document.text).ids);
    hash.update(document.text, 'utf8').update(new Uint8Array(1));
  }
  const tokens = texts.reduce((total, text) => total + text.length, 0);
  if (tokens < width) {
    fail('E_INPUT', `--owner-text ${path} holds ${tokens} tokens; the filter needs at least ${width}`);
  }
  const filter = buildWindowFilter(texts, width);
  return {
    filter,
    summary: {
      source: path,
      documents: texts.length,
      sha256: hash.digest('hex'),
      width,
      windows: filter.windows.size,
    },
  };
}

function probability(name: string, text: string): number {
  const value = Number(text);
  if (!(value > 0 && value < 1)) fail('E_USAGE', `--${name} must be a number in (0, 1); got ${text}`);
  return value;
}

export async function runVerifyCommand(values: VerifyOptions, positionals: string[]): Promise<number> {
  if (positionals.length > 0) fail('E_USAGE', `verify takes no positional arguments; got ${positionals[0]}`);
  if (values.store === undefined) fail('E_USAGE', 'verify needs --store <evidence.db>');
  if (values.keyFile === undefined) fail('E_USAGE', "verify needs the owner's --key-file <file>");
  if (values.spec === undefined) fail('E_USAGE', 'verify needs --spec <json|file>');
  const alpha = probability('alpha', values.alpha);
  const controlsAlpha = probability('controls-alpha', values.controlsAlpha);
  const controlsText = values.controls ?? String(DEFAULT_CONTROLS);
  const controls = Number(controlsText);
  if (!(Number.isInteger(controls) && controls >= 20 && controls <= 10_000)) {
    fail('E_USAGE', `--controls must be an integer from 20 to 10000; got ${controlsText}`);
  }
  let threads: number | undefined;
  if (values.threads !== undefined) {
    threads = Number(values.threads);
    if (!(Number.isInteger(threads) && threads >= 1 && threads <= 256)) {
      fail('E_USAGE', `--threads must be an integer from 1 to 256; got ${values.threads}`);
    }
  }
  const spec = jsonArgument(values.spec, '--spec');
  const key = readKeyFile(values.keyFile);
  const tenants =
    values.tenants === undefined
      ? undefined
      : parseTenantList(readTextFile(values.tenants, 'tenants file'), values.tenants);
  const filterWidthText = values.filterWidth ?? String(DEFAULT_FILTER_WIDTH);
  const filterWidth = Number(filterWidthText);
  if (!(Number.isInteger(filterWidth) && filterWidth >= 1 && filterWidth <= 16)) {
    fail('E_USAGE', `--filter-width must be an integer from 1 to 16; got ${filterWidthText}`);
  }
  const inspect = EvidenceStore.open(values.store);
  const mode = inspect.mode;
  inspect.close();
  if (mode === 'read') {
    if (values.ownerText !== undefined)
      fail(
        'E_USAGE',
        "--owner-text does not apply to a reading store: the suspect read the owner's own texts",
      );
    return verifyReading(values, { spec, key, tenants, controls, alpha, controlsAlpha, threads });
  }
  const tokenizer = await loadTokenizer(values.tokenizer);
  const owner =
    values.ownerText === undefined ? null : await ownerFilter(values.ownerText, tokenizer, filterWidth);

  let started = performance.now();
  const store = EvidenceStore.open(values.store);
  const sha256: string[] = [];
  const endpoints = new Set<string>();
  const reportedModels: Record<string, number> = {};
  const texts: { id: string; prompt: string; system: string | null; output: string }[] = [];
  let firstRequestedAt: string | null = null;
  let lastReceivedAt: string | null = null;
  let runs: RunRecord[];
  let model: string | null;
  try {
    for (const response of store.responses()) {
      // The body is the evidence: its hash must hold, and the scored text must be the text it carries.
      if (sha256Hex(response.responseBody) !== response.responseSha256) {
        fail(
          'E_INPUT',
          `${values.store}: the body of response ${response.seq} does not match its SHA-256; the store was altered`,
        );
      }
      const parsed = parseCompletion(response.responseBody, response.api, `response ${response.seq}`);
      if (parsed.text !== response.output) {
        fail(
          'E_INPUT',
          `${values.store}: the text of response ${response.seq} is not the text of its body; the store was altered`,
        );
      }
      sha256.push(response.responseSha256);
      endpoints.add(redactEndpoint(response.endpoint));
      const reported = response.reportedModel ?? '(none)';
      reportedModels[reported] = (reportedModels[reported] ?? 0) + 1;
      if (firstRequestedAt === null || response.requestedAt < firstRequestedAt)
        firstRequestedAt = response.requestedAt;
      if (lastReceivedAt === null || response.receivedAt > lastReceivedAt)
        lastReceivedAt = response.receivedAt;
      texts.push({
        id: `${response.promptId}#${response.sample}`,
        prompt: response.prompt,
        system: response.system,
        output: response.output,
      });
    }
    runs = store.runs();
    model = store.model ?? null;
  } finally {
    store.close();
  }
  if (texts.length === 0) fail('E_INPUT', `${values.store} holds no responses; run tracemark probe first`);
  const readMs = performance.now() - started;

  started = performance.now();
  const samples: SuspectSample[] = texts.map((t) => sampleOf(tokenizer, t));
  const tokenizeMs = performance.now() - started;
  const { vocabSize } = parseSpec(spec);
  for (const sample of samples) {
    for (let i = 0; i < sample.output.length; i++) {
      if (sample.output[i] >= vocabSize) {
        fail(
          'E_TOKEN_RANGE',
          `the tokenizer ${tokenizer.id} gives token ids beyond the spec's vocabSize; pass the tokenizer the watermark was made with (--tokenizer)`,
        );
      }
    }
  }

  // The stopping rule decides which p-value the verdict may cite.
  const stoppedBySequentialTest = runs.some((r) => r.outcome?.state === 'stopped-by-sequential-test');
  const result = await investigate(samples, {
    stopping: stoppedBySequentialTest ? 'anytime' : 'fixed',
    spec,
    key,
    tenants,
    controls,
    alpha,
    controlsAlpha,
    threads,
    filter: owner?.filter,
  });
  const report: VerifyReport = {
    command: 'verify',
    store: values.store,
    model,
    reportedModels,
    tokenizer: tokenizer.id,
    ownerFilter: owner?.summary ?? null,
    ...result,
    responses: { count: texts.length, sha256, endpoints: [...endpoints], firstRequestedAt, lastReceivedAt },
    runs,
    stoppedBySequentialTest,
    suspect: {
      requestedModel: model,
      reportedModels,
      endpoints: [...endpoints],
      probeDates: { first: firstRequestedAt, last: lastReceivedAt },
      responses: texts.length,
      tokens: { seen: result.seen, scored: result.scored },
    },
    samples: texts.slice(0, SAMPLES_SHOWN).map((t) => ({ id: t.id, prompt: t.prompt, text: t.output })),
    timings: { ...result.timings, readMs, tokenizeMs },
  };

  if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`${verifyLines(report).join('\n')}\n`);
  return values.failOnDetect && result.verdict.detected ? 1 : 0;
}

/** verify on a store filled by `tracemark read`: the reading-mode test of the stored predictions. */
async function verifyReading(
  values: VerifyOptions,
  options: Omit<Parameters<typeof investigateReading>[1], 'stopping'>,
): Promise<number> {
  const store = values.store as string;
  let started = performance.now();
  const evidence = EvidenceStore.open(store);
  let rebuilt: ReturnType<typeof storedReadTexts>;
  let binding: ReturnType<typeof readBinding>;
  let runs: RunRecord[];
  let model: string | null;
  try {
    binding = readBinding(evidence);
    if (binding === undefined) fail('E_INPUT', `${store} holds no readings; run tracemark read first`);
    // Every body is checked against its SHA-256, and parsed again: what is scored is what the bodies say.
    rebuilt = storedReadTexts(evidence, binding.chunk, binding.overlap);
    runs = evidence.runs();
    model = evidence.model ?? null;
  } finally {
    evidence.close();
  }
  if (rebuilt.texts.length === 0) fail('E_INPUT', `${store} holds no readings; run tracemark read first`);
  const readMs = performance.now() - started;
  const { vocabSize } = parseSpec(options.spec);
  for (const text of rebuilt.texts) {
    for (const ids of [text.tokens, text.predictions]) {
      for (let i = 0; i < ids.length; i++) {
        if (ids[i] >= vocabSize)
          fail(
            'E_TOKEN_RANGE',
            `${store} holds token ids beyond the spec's vocabSize (${vocabSize}): the texts were read with ${binding.tokenizer}, not in the watermark's vocabulary`,
          );
      }
    }
  }
  started = performance.now();
  const result = await investigateReading(rebuilt.texts, { ...options, stopping: 'fixed' });
  const reportedModels: Record<string, number> = {};
  let firstRequestedAt: string | null = null;
  let lastReceivedAt: string | null = null;
  const sources = new Set<string>();
  for (const r of rebuilt.readings) {
    const reported = r.reportedModel ?? '(none)';
    reportedModels[reported] = (reportedModels[reported] ?? 0) + 1;
    if (firstRequestedAt === null || r.requestedAt < firstRequestedAt) firstRequestedAt = r.requestedAt;
    if (lastReceivedAt === null || r.receivedAt > lastReceivedAt) lastReceivedAt = r.receivedAt;
    sources.add(r.sourceKind === 'endpoint' ? redactEndpoint(r.source) : r.source);
  }
  const report: VerifyReport = {
    command: 'verify',
    store,
    model,
    reportedModels,
    tokenizer: binding.tokenizer,
    ownerFilter: null,
    ...result,
    responses: {
      count: rebuilt.readings.length,
      sha256: rebuilt.readings.map((r) => r.responseSha256),
      endpoints: [...sources],
      firstRequestedAt,
      lastReceivedAt,
    },
    runs,
    stoppedBySequentialTest: false,
    suspect: {
      requestedModel: model,
      reportedModels,
      endpoints: [...sources],
      probeDates: { first: firstRequestedAt, last: lastReceivedAt },
      responses: rebuilt.readings.length,
      tokens: { seen: result.seen, scored: result.scored },
    },
    samples: [],
    readingEvidence: {
      sourceKind: binding.kind,
      source: binding.kind === 'endpoint' ? redactEndpoint(binding.source) : binding.source,
      tokenizer: binding.tokenizer,
      context: binding.chunk,
      overlap: binding.overlap,
      texts: rebuilt.names.map((t) => ({
        id: t.textId,
        name: t.name,
        tokens: t.tokens,
        positionsRead: t.positions,
      })),
      windows: rebuilt.windows,
      incompleteTexts: rebuilt.incompleteTexts,
    },
    timings: { ...result.timings, readMs, tokenizeMs: 0 },
  };
  if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`${verifyLines(report).join('\n')}\n`);
  return values.failOnDetect && result.verdict.detected ? 1 : 0;
}

export function verifyLines(report: VerifyReport): string[] {
  if (report.mode === 'read') return readingLines(report);
  const s = report.skipped;
  const reported = Object.entries(report.reportedModels)
    .map(([name, n]) => `${name} ×${n}`)
    .join(', ');
  const lines = [
    `suspect      ${report.model ?? '(unknown)'}: ${report.responses.count} responses in ${report.store} (reported model: ${reported})`,
    `evidence     closed mode: the suspect's own outputs to the probe prompts`,
    `key          ${report.masterFingerprint} (scheme key ${report.keyFingerprint})  ${JSON.stringify(report.spec)}`,
    ...(report.ownerFilter === null
      ? []
      : [
          `filter       ${report.ownerFilter.windows} windows of ${report.ownerFilter.width} tokens from ${report.ownerFilter.documents} owner documents (${report.ownerFilter.source})`,
        ]),
    `tokens       ${report.seen} seen, ${report.scored} scored (${report.tokenizer}; not scored: ${s.duplicate} repeats, ${s.promptWindow} prompt windows, ${s.context} without context${s.filtered > 0 ? `, ${s.filtered} filtered` : ''})`,
    ...statisticLines(report),
  ];
  lines.push(...tenantAndVerdictLines(report));
  return lines;
}

/** The text report of a reading store: which mode produced the evidence, and the reading rule's skips. */
function readingLines(report: VerifyReport): string[] {
  const r = report.readingEvidence;
  const reading = report.reading;
  const reported = Object.entries(report.reportedModels)
    .map(([name, n]) => `${name} ×${n}`)
    .join(', ');
  const lines = [
    `suspect      ${report.model ?? '(unknown)'}: ${report.responses.count} windows read in ${report.store} (reported model: ${reported})`,
    `evidence     reading mode: the suspect's top-1 next token on ${reading?.texts ?? 0} owner texts, read from ${r?.sourceKind ?? '?'} ${r?.source ?? ''} (${r?.tokenizer ?? ''}; windows of ${r?.context ?? '?'} tokens, ${r?.overlap ?? '?'} of context${r !== undefined && r.incompleteTexts > 0 ? `; ${r.incompleteTexts} texts not read to the end, scored up to their first unread window` : ''})`,
    `key          ${report.masterFingerprint} (scheme key ${report.keyFingerprint})  ${JSON.stringify(report.spec)}`,
    `positions    ${reading?.positions ?? 0} read, ${report.scored} scored (not scored: ${reading?.skipped.context ?? 0} before the first full window (context), ${reading?.skipped.repeatedWindow ?? 0} repeated windows, ${reading?.skipped.missing ?? 0} missing, ${report.skipped.duplicate} repeats)`,
    ...statisticLines(report),
  ];
  lines.push(...tenantAndVerdictLines(report));
  return lines;
}

function statisticLines(report: VerifyReport): string[] {
  return [
    `p-value      ${formatPValue(report.pValue, report.log10PValue)}  (log10 ${report.log10PValue.toFixed(3)}; exact, ${describeSum(report)}; z = ${report.zScore.toFixed(2)})`,
    `e-process    10^${report.sequential.log10EValue.toFixed(2)}, largest 10^${report.sequential.log10MaxEValue.toFixed(2)}  (anytime-valid p = ${formatPValue(10 ** report.sequential.log10AnytimePValue, report.sequential.log10AnytimePValue)}, valid however probing was stopped)`,
    `controls     ${report.controls.count} never-used keys: smallest p ${formatPValue(report.controls.minPValue, Math.log10(report.controls.minPValue))}, ${report.controls.atOrBelowOwner} at or below the owner's; KS uniformity p = ${report.controls.uniformity.pValue.toPrecision(3)} → ${report.controls.passed ? 'passed' : 'FAILED'}`,
  ];
}

function tenantAndVerdictLines(report: VerifyReport): string[] {
  const lines: string[] = [];
  if (report.tenants !== undefined) {
    const ranked = [...report.tenants].sort(
      (a, b) => a.adjustedLog10PValue - b.adjustedLog10PValue || a.log10PValue - b.log10PValue,
    );
    lines.push(
      `tenants      ${report.tenants.length} tested, Holm-adjusted across them; most significant first:`,
    );
    for (const t of ranked.slice(0, 10)) {
      lines.push(
        `  ${t.id.padEnd(24)} p ${formatPValue(t.pValue, t.log10PValue).padEnd(10)} adjusted ${formatPValue(t.adjustedPValue, t.adjustedLog10PValue)}`,
      );
    }
    if (ranked.length > 10) lines.push(`  … ${ranked.length - 10} more (--json lists every tenant)`);
  }
  lines.push(`verdict      ${report.verdict.text}`);
  if (report.stoppedBySequentialTest) {
    lines.push(
      `note         probing stopped when the e-process reached 1/α: after such a stop the fixed-size p-value is optimistic, so the verdict cites the anytime-valid p = ${formatPValue(report.verdict.pValueCited, report.verdict.log10PValueCited)}`,
    );
  }
  return lines;
}

function describeSum(report: VerifyReport): string {
  const law = report.nullLaw;
  if (law.kind === 'bernoulli') {
    return `${report.scoreSum} of ${report.scored} green, ${((100 * report.scoreSum) / report.scored).toFixed(2)} % against γ = ${(100 * law.p).toFixed(2)} %`;
  }
  if (law.kind === 'binomial') return `${report.scoreSum} of ${law.trials * report.scored} bits set`;
  return `score sum ${report.scoreSum.toFixed(1)} over ${report.scored} tokens (mean 1 under H0)`;
}
