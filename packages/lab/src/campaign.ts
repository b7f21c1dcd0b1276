import {
  attributeAccounts,
  buildWindowFilter,
  prepareAccounts,
  radioactivityTest,
} from '@tracemark/verifier';
import { createRng, createScheme, type KgwScheme } from '@tracemark/watermark';
import { type LabConfig, type LabOptions, positiveInteger, resolveLabConfig } from './config';
import { labKeys, loadLabData } from './data';
import { distillStudent, type GeneratedSample, generateSamples, probeStudent, trainTeacher } from './distill';
import { fail } from './errors';

/**
 * A harvesting campaign (issue: attribution at the scale of a campaign): organisations of many accounts query the
 * teacher, whose outputs carry the key hierarchy (an organisation layer shared by every output, and an account
 * layer per account; watermark's account-layer.ts). One organisation's harvest trains a student, which the
 * organisation layer must detect as a one-layer watermark would (same probes, same budget); and that harvest, leaked,
 * is traced to its accounts among every organisation's.
 *
 * Account activity is heavy-tailed, as in a real campaign: each harvested sample's account is drawn from a Zipf law
 * (exponent 1.1) over the organisation's accounts, so a few accounts pull many samples and most pull one or none.
 * Only the traced organisation's harvest is written; the others' accounts are candidates that wrote nothing in it.
 * An n-gram student memorises its training text far more exactly than an LLM student: its radioactivity figures are
 * an upper bound on an LLM's (docs/radioactivity.md).
 */

export interface CampaignOptions
  extends Pick<LabOptions, 'seed' | 'probes' | 'probeTokens' | 'teacherTokens' | 'workers'> {
  /** Organisations, and accounts in each (default 3 × 8,000). */
  organisations?: number;
  accounts?: number;
  /** Samples the traced organisation harvests (default 2,000). */
  samples?: number;
  /** Share ρ of the student's training tokens that are the harvest (default 0.5). */
  rho?: number;
  /** The account layer's δ (default 2, the demo's); the organisation layer is KGW h = 1, γ = 0.25, δ = 2. */
  accountDelta?: number;
  /** Level of attribution (default 1e-3). */
  alpha?: number;
}

export interface CampaignAccountBand {
  /** Samples each account of the band contributed to the leak: [min, max]. */
  samples: [number, number];
  accounts: number;
  attributed: number;
}

export interface CampaignReport {
  settings: {
    organisations: number;
    accountsPerOrganisation: number;
    candidates: number;
    samples: number;
    teacherTokens: number;
    rho: number;
    probes: number;
    probeTokens: number;
    spec: Record<string, unknown>;
    alpha: number;
    seed: string;
  };
  /** The radioactivity test of the student of the traced organisation's harvest: layered teacher, one-layer teacher. */
  radioactivity: {
    layered: { log10PValue: number; scored: number };
    single: { log10PValue: number; scored: number };
    /** layered / single, in log10 p (the goal: ≥ 0.9). */
    ratio: number;
    clean: { log10PValue: number; scored: number };
  };
  /** The leaked harvest traced among every organisation's accounts. */
  leak: {
    samples: number;
    accountsInLeak: number;
    organisationLog10PValue: number;
    scored: number;
    bands: CampaignAccountBand[];
    /** Candidates attributed that wrote nothing in the leak (the family-wise error; must be 0 at this α). */
    falseAttributions: number;
    bestOtherLog10AdjustedPValue: number;
    /** The accounts that contributed most to the leak, with their tests. */
    heaviest: {
      id: string;
      contributed: number;
      log10PValue: number;
      log10AdjustedPValue: number;
      attributed: boolean;
    }[];
    seconds: number;
    threads: number;
  };
  timings: { totalMs: number };
}

/** Zipf(s) draws over 1..n by inversion of its cumulative weights. */
function zipfSampler(n: number, exponent: number, seed: string): () => number {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += 1 / (k + 1) ** exponent;
    cumulative[k] = total;
  }
  const random = createRng(seed);
  return () => {
    const u = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

const accountId = (organisation: number, account: number) =>
  `org${organisation}-acct${String(account).padStart(5, '0')}`;

/** The campaign: harvest, distil, probe, and trace the leak. */
export async function runCampaign(
  options: CampaignOptions = {},
  onProgress: (line: string) => void = () => {},
): Promise<CampaignReport> {
  const started = performance.now();
  const organisations = positiveInteger(options.organisations, 3, '--organisations', 100);
  const perOrganisation = positiveInteger(options.accounts, 8000, '--accounts', 1_000_000);
  const samples = positiveInteger(options.samples, 2000, '--samples', 1_000_000);
  const rho = options.rho ?? 0.5;
  const accountDelta = options.accountDelta ?? 2;
  const alpha = options.alpha ?? 1e-3;
  if (!(rho > 0 && rho <= 1)) fail('E_USAGE', `--rho must be in (0, 1] for a campaign; got ${rho}`);
  if (!(accountDelta > 0 && accountDelta < 100))
    fail('E_USAGE', `--account-delta must be in (0, 100); got ${accountDelta}`);
  const config: LabConfig = resolveLabConfig(
    {
      profile: 'quick',
      seed: options.seed,
      samples,
      teacherTokens: options.teacherTokens,
      probes: options.probes ?? 1500,
      probeTokens: options.probeTokens,
      rhos: [0, rho],
      schemes: ['kgw-h1'],
      workers: options.workers,
    },
    1,
  );
  const data = loadLabData(config);
  onProgress(
    `campaign: teacher of ${data.teacherTokens.toLocaleString('en-US')} tokens (order ${config.teacherOrder})`,
  );
  const teacher = trainTeacher(config, data.teacherText);
  const { owner } = labKeys(config.seed);
  const single = { scheme: 'kgw', gamma: 0.25, delta: 2, contextWidth: 1, vocabSize: data.vocabSize };
  const layered = { ...single, accountDelta };

  // The traced organisation's harvest: sample j is asked by a Zipf-drawn account of organisation 0.
  const draw = zipfSampler(perOrganisation, 1.1, `${config.seed}:campaign:accounts`);
  const askedBy = Array.from({ length: samples }, () => accountId(0, draw()));
  const prompts = data.teacherPrompts.slice(0, samples);
  const settings = {
    maxTokens: config.teacherTokens,
    sampling: config.sampling,
    topK: config.topK,
    temperature: config.temperature,
  };
  onProgress(
    `campaign: organisation 0 harvests ${samples} samples (layered teacher, and the one-layer twin)`,
  );
  const base = createScheme(layered, owner) as KgwScheme;
  const oneLayer = createScheme(single, owner);
  // Common random numbers: sample j of both teachers is drawn with the same seed, so that the two harvests differ
  // by the account layer's bias only, not by the sampling noise of two independent runs.
  const harvest: GeneratedSample[] = [];
  const twin: GeneratedSample[] = [];
  for (let j = 0; j < samples; j++) {
    const seed = `${config.seed}:campaign:${j}`;
    const [sample] = await generateSamples(teacher, base.forAccount(askedBy[j]), [prompts[j]], {
      ...settings,
      seed,
    });
    const [plainTwin] = await generateSamples(teacher, oneLayer, [prompts[j]], { ...settings, seed });
    harvest.push(sample);
    twin.push(plainTwin);
  }

  // Students of each harvest at the same ρ, probed with the same prompts at the same budget.
  onProgress(`campaign: students at rho ${rho}, ${config.probes} probes each`);
  const probe = async (train: GeneratedSample[], r: number, label: string) => {
    const { model } = distillStudent(config, data.clean, train, r, { role: `campaign-${label}` });
    const answers = await probeStudent(config, model, data.probePrompts, `campaign:${label}`);
    const filter =
      config.filterWidth > 0
        ? buildWindowFilter(
            train.map((s) => s.output),
            config.filterWidth,
          )
        : undefined;
    const result = radioactivityTest(answers, { scheme: createScheme(single, owner), filter });
    return { log10PValue: result.log10PValue, scored: result.scored };
  };
  const layeredStudent = await probe(harvest, rho, 'layered');
  const singleStudent = await probe(twin, rho, 'single');
  const cleanStudent = await probe(harvest, 0, 'clean');

  // The leak: the whole harvest, traced among every organisation's accounts.
  const candidates: string[] = [];
  for (let o = 0; o < organisations; o++)
    for (let a = 0; a < perOrganisation; a++) candidates.push(accountId(o, a));
  onProgress(`campaign: tracing the leak against ${candidates.length.toLocaleString('en-US')} candidates`);
  const traceStart = performance.now();
  const traced = await attributeAccounts(harvest, {
    spec: layered,
    master: owner,
    accounts: prepareAccounts(layered, owner, candidates),
    alpha,
    threads: options.workers,
  });
  const seconds = (performance.now() - traceStart) / 1000;
  const contributed = new Map<string, number>();
  for (const id of askedBy) contributed.set(id, (contributed.get(id) ?? 0) + 1);
  const attributed = new Set(traced.attributed);
  const bands: CampaignAccountBand[] = (
    [
      [1, 1],
      [2, 4],
      [5, 19],
      [20, 99],
      [100, Number.MAX_SAFE_INTEGER],
    ] as [number, number][]
  ).map(([lo, hi]) => {
    const inBand = [...contributed].filter(([, n]) => n >= lo && n <= hi).map(([id]) => id);
    return {
      samples: [lo, hi],
      accounts: inBand.length,
      attributed: inBand.filter((id) => attributed.has(id)).length,
    };
  });
  const others = traced.accounts.filter((row) => !contributed.has(row.id));
  const rowOf = new Map(traced.accounts.map((row) => [row.id, row]));
  const heaviest = [...contributed]
    .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1))
    .slice(0, 10)
    .map(([id, n]) => {
      const row = rowOf.get(id);
      if (row === undefined) throw new Error(`unreachable: ${id} is a candidate`);
      return {
        id,
        contributed: n,
        log10PValue: row.log10PValue,
        log10AdjustedPValue: row.log10AdjustedPValue,
        attributed: row.attributed,
      };
    });
  return {
    settings: {
      organisations,
      accountsPerOrganisation: perOrganisation,
      candidates: candidates.length,
      samples,
      teacherTokens: config.teacherTokens,
      rho,
      probes: config.probes,
      probeTokens: config.probeTokens,
      spec: layered,
      alpha,
      seed: config.seed,
    },
    radioactivity: {
      layered: layeredStudent,
      single: singleStudent,
      ratio: layeredStudent.log10PValue / singleStudent.log10PValue,
      clean: cleanStudent,
    },
    leak: {
      samples: harvest.length,
      accountsInLeak: contributed.size,
      organisationLog10PValue: traced.organisation.log10PValue,
      scored: traced.scored,
      bands,
      falseAttributions: others.filter((row) => row.attributed).length,
      bestOtherLog10AdjustedPValue: others[0]?.log10AdjustedPValue ?? 0,
      heaviest,
      seconds,
      threads: traced.threads,
    },
    timings: { totalMs: performance.now() - started },
  };
}

/** The campaign's tables in Markdown, with the settings and the n-gram caveat. */
export function campaignMarkdown(report: CampaignReport): string {
  const { settings: s, radioactivity: r, leak } = report;
  const f = (x: number) => x.toFixed(1);
  const lines = [
    '# Campaign: organisations × accounts harvesting a layered teacher',
    '',
    `${s.organisations} organisations × ${s.accountsPerOrganisation.toLocaleString('en-US')} accounts (${s.candidates.toLocaleString('en-US')} candidates); organisation 0 harvests ${s.samples.toLocaleString('en-US')} samples of ${s.teacherTokens} tokens, each asked by a Zipf(1.1)-drawn account of its own; spec \`${JSON.stringify(s.spec)}\`; seed \`${s.seed}\`.`,
    '',
    "**An n-gram student is not an LLM**: it memorises its training text exactly, so its radioactivity is far stronger than an LLM student's at the same share; the comparison between the two teachers is what this table shows, not the level.",
    '',
    `## Radioactivity: the organisation layer against a one-layer teacher (ρ = ${s.rho}, ${s.probes.toLocaleString('en-US')} probes × ${s.probeTokens} tokens)`,
    '',
    '| teacher | log10 p | scored tokens |',
    '| --- | --- | --- |',
    `| layered (organisation + account layer) | ${f(r.layered.log10PValue)} | ${r.layered.scored.toLocaleString('en-US')} |`,
    `| one layer (same spec, no account layer) | ${f(r.single.log10PValue)} | ${r.single.scored.toLocaleString('en-US')} |`,
    `| clean student (ρ = 0) | ${r.clean.log10PValue.toFixed(2)} | ${r.clean.scored.toLocaleString('en-US')} |`,
    '',
    `Layered / one-layer, in log10 p: **${r.ratio.toFixed(2)}** (goal ≥ 0.9).`,
    '',
    `## The leaked harvest traced to its accounts (Holm over ${s.candidates.toLocaleString('en-US')} candidates, α = ${s.alpha})`,
    '',
    `${leak.samples.toLocaleString('en-US')} samples from ${leak.accountsInLeak.toLocaleString('en-US')} accounts; ${leak.scored.toLocaleString('en-US')} scored positions; organisation layer log10 p = ${f(leak.organisationLog10PValue)}; traced in ${leak.seconds.toFixed(1)} s on ${leak.threads} thread(s).`,
    '',
    '| samples an account contributed | accounts | attributed |',
    '| --- | --- | --- |',
    ...leak.bands
      .filter((b) => b.accounts > 0)
      .map(
        (b) =>
          `| ${b.samples[0] === b.samples[1] ? b.samples[0] : b.samples[1] >= Number.MAX_SAFE_INTEGER ? `≥ ${b.samples[0]}` : `${b.samples[0]}–${b.samples[1]}`} | ${b.accounts} | ${b.attributed} |`,
      ),
    '',
    `Accounts attributed that wrote nothing in the leak: **${leak.falseAttributions}**; the best of them: adjusted log10 p = ${leak.bestOtherLog10AdjustedPValue.toFixed(2)}.`,
    '',
    'The heaviest accounts of the leak:',
    '',
    '| account | samples in the leak | log10 p | log10 adjusted p | attributed |',
    '| --- | --- | --- | --- | --- |',
    ...leak.heaviest.map(
      (a) =>
        `| ${a.id} | ${a.contributed} | ${a.log10PValue.toFixed(1)} | ${a.log10AdjustedPValue.toFixed(1)} | ${a.attributed ? 'yes' : 'no'} |`,
    ),
    '',
  ];
  return lines.join('\n');
}
