import {
  EVAL_SCHEME_NAMES,
  type EvalOptions,
  type EvalProgress,
  type Rewriter,
  runEvaluation,
  writeEvalOutputs,
} from '@tracemark/eval';
import { checkOutputDirectory } from '@tracemark/lab';
import { SingleBar } from 'cli-progress';
import { fail } from '../errors';
import { listValue, numberValue } from '../option-values';

/** The options of `tracemark eval`, as commander parses them (declared in main.ts). */
export interface EvalCommandOptions {
  schemes?: string;
  lengths?: string;
  texts?: string;
  attacks?: string;
  alpha?: string;
  corpus?: string;
  seed?: string;
  temperature?: string;
  expEditKeys?: string;
  expEditTexts?: string;
  workers?: string;
  rewriteEndpoint?: string;
  rewriteModel?: string;
  apiKeyEnv?: string;
  out: string;
  quick?: boolean;
  quiet?: boolean;
}

/** The instruction of the rewrite attack: a paraphrase that keeps the meaning, as a user would ask for one. */
export const REWRITE_INSTRUCTION =
  'Rewrite the following text in your own words. Keep its meaning and roughly its length. Reply with the rewritten text only.';

/**
 * The rewrite attack's model: an OpenAI-compatible chat endpoint, through the prober's client (its retries,
 * deadlines and key handling), at temperature 0.7; the key comes from the environment and is never printed.
 */
async function rewriterOf(values: EvalCommandOptions): Promise<Rewriter | undefined> {
  if (values.rewriteEndpoint === undefined) {
    if (values.rewriteModel !== undefined) fail('E_USAGE', '--rewrite-model needs --rewrite-endpoint');
    return undefined;
  }
  const model = values.rewriteModel;
  if (model === undefined || model.trim() === '')
    fail('E_USAGE', '--rewrite-endpoint needs --rewrite-model <name>');
  const { ProbeClient } = await import('@tracemark/evidence');
  const { apiKeyFrom } = await import('./probe');
  const { key } = apiKeyFrom(values.apiKeyEnv);
  const client = new ProbeClient({
    endpoint: values.rewriteEndpoint,
    apiKey: key,
    timeoutMs: 120_000,
    retries: 4,
  });
  return {
    description: `${model} at ${client.endpoint}, temperature 0.7: ${JSON.stringify(REWRITE_INSTRUCTION)}`,
    rewrite: async (text, id) => {
      const record = await client.complete(
        { id, prompt: `${REWRITE_INSTRUCTION}\n\n${text}`, system: null, line: 0 },
        0,
        { api: 'chat', model, temperature: 0.7, maxTokens: 2 * Math.ceil(text.length / 2) + 64 },
      );
      return record.output;
    },
  };
}

/** Reads the command line of `tracemark eval` into harness options (the harness checks every value). */
export function parseEvalArgs(
  values: EvalCommandOptions,
  positionals: string[],
): { options: EvalOptions; out: string; quiet: boolean } {
  if (positionals.length > 0) fail('E_USAGE', `eval takes no positional arguments; got ${positionals[0]}`);
  const schemes = listValue(values.schemes, '--schemes');
  for (const name of schemes ?? []) {
    if (!(EVAL_SCHEME_NAMES as string[]).includes(name))
      fail(
        'E_USAGE',
        `unknown scheme ${JSON.stringify(name.slice(0, 40))}; expected ${EVAL_SCHEME_NAMES.join(', ')}`,
      );
  }
  const options: EvalOptions = {
    schemes,
    lengths: listValue(values.lengths, '--lengths')?.map(
      (l) => numberValue(l, '--lengths values', true) as number,
    ),
    texts: numberValue(values.texts, '--texts', true),
    attacks: values.attacks,
    alpha: numberValue(values.alpha, '--alpha', false),
    corpus: values.corpus,
    seed: values.seed,
    temperature: numberValue(values.temperature, '--temperature', false),
    expEditKeys: numberValue(values.expEditKeys, '--exp-edit-keys', true),
    expEditTexts: numberValue(values.expEditTexts, '--exp-edit-texts', true),
    workers: numberValue(values.workers, '--workers', true),
    quick: values.quick === true,
  };
  if (values.out.trim() === '') fail('E_USAGE', '--out must name a directory');
  return { options, out: values.out, quiet: values.quiet === true };
}

/** A progress bar on standard error: one bar per stage, redrawn in place on a terminal, a line per stage elsewhere. */
function progressBar(): { update: (p: EvalProgress) => void; stop: () => void } {
  const bar = new SingleBar({
    format: '{stage} [{bar}] {value}/{total} | {duration_formatted}',
    stream: process.stderr,
    noTTYOutput: false,
    hideCursor: true,
    clearOnComplete: false,
  });
  let stage = '';
  return {
    update: (p) => {
      if (p.stage !== stage) {
        if (stage !== '') bar.stop();
        stage = p.stage;
        if (!process.stderr.isTTY) process.stderr.write(`${p.stage}\n`);
        bar.start(p.total, p.done, { stage: p.stage });
      } else {
        bar.update(p.done);
      }
    },
    stop: () => bar.stop(),
  };
}

export async function runEvalCommand(values: EvalCommandOptions, positionals: string[]): Promise<number> {
  const { options, out, quiet } = parseEvalArgs(values, positionals);
  checkOutputDirectory(out);
  const rewriter = await rewriterOf(values);
  const bar = quiet ? null : progressBar();
  const command = `tracemark eval ${process.argv.slice(3).join(' ')}`.trim();
  try {
    const report = await runEvaluation(options, { onProgress: bar?.update, command, rewriter });
    bar?.stop();
    const files = writeEvalOutputs(report, out);
    const total = Object.values(report.timings).reduce((a, b) => a + b, 0);
    if (!quiet) process.stdout.write(`wrote ${files.length} files to ${out} in ${total.toFixed(1)} s\n`);
  } finally {
    bar?.stop();
  }
  return 0;
}
