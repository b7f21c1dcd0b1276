import {
  defaultPromptBankPath,
  EvidenceStore,
  ProbeClient,
  type ProbeParameters,
  readPromptBank,
  runProbe,
  SequentialMonitor,
} from '@tracemark/evidence';
import { jsonArgument, loadTokenizer, readKeyFile } from '@tracemark/verifier';
import { createScheme } from '@tracemark/watermark';
import { fail } from '../errors';
import { formatDuration, Progress } from '../progress';

/** The options of `tracemark probe`, as commander parses them (declared in main.ts). */
export interface ProbeOptions {
  endpoint?: string;
  model?: string;
  prompts?: string;
  samples: string;
  store?: string;
  concurrency: string;
  temperature: string;
  maxTokens: string;
  api: string;
  apiKeyEnv?: string;
  timeout: string;
  retries: string;
  seed?: string;
  untilAlpha?: string;
  keyFile?: string;
  spec?: string;
  tokenizer: string;
  json?: boolean;
}

const DEFAULT_KEY_ENV = 'OPENAI_API_KEY';

function integerOption(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!(Number.isInteger(value) && value >= min && value <= max)) {
    fail('E_USAGE', `--${name} must be an integer from ${min} to ${max}; got ${text}`);
  }
  return value;
}

function numberOption(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= min && value <= max)) {
    fail('E_USAGE', `--${name} must be a number from ${min} to ${max}; got ${text}`);
  }
  return value;
}

/** The API key from the environment variable named by --api-key-env; its value is never printed. */
export function apiKeyFrom(name: string | undefined): { key: string | undefined; source: string } {
  const variable = name ?? DEFAULT_KEY_ENV;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) {
    fail('E_USAGE', '--api-key-env takes the name of an environment variable, not a key');
  }
  const value = process.env[variable];
  if (value === undefined || value.trim() === '') {
    if (name !== undefined) fail('E_USAGE', `--api-key-env ${variable}: $${variable} is not set`);
    return { key: undefined, source: `no API key ($${variable} is not set)` };
  }
  return { key: value.trim(), source: `API key from $${variable}` };
}

export async function runProbeCommand(values: ProbeOptions, positionals: string[]): Promise<number> {
  if (positionals.length > 0) fail('E_USAGE', `probe takes no positional arguments; got ${positionals[0]}`);
  if (values.store === undefined) fail('E_USAGE', 'probe needs --store <evidence.db>');
  if (values.endpoint === undefined)
    fail('E_USAGE', 'probe needs --endpoint <base URL>, e.g. http://127.0.0.1:8000/v1');
  if (values.model === undefined || values.model === '') fail('E_USAGE', 'probe needs --model <name>');
  const api = values.api;
  if (api !== 'chat' && api !== 'completions')
    fail('E_USAGE', `--api must be chat or completions; got ${api}`);
  const samples = integerOption('samples', values.samples, 1, 100_000);
  const concurrency = integerOption('concurrency', values.concurrency, 1, 256);
  const temperature = numberOption('temperature', values.temperature, 0, 2);
  const maxTokens = integerOption('max-tokens', values.maxTokens, 1, 1_000_000);
  const timeoutSeconds = numberOption('timeout', values.timeout, 0.1, 3600);
  const retries = integerOption('retries', values.retries, 0, 100);
  const seed = values.seed === undefined ? undefined : integerOption('seed', values.seed, 0, 2 ** 31 - 1);
  const { key: apiKey, source: keySource } = apiKeyFrom(values.apiKeyEnv);

  let alpha: number | undefined;
  if (values.untilAlpha !== undefined) {
    alpha = Number(values.untilAlpha);
    if (!(alpha > 0 && alpha < 1))
      fail('E_USAGE', `--until-alpha must be a number in (0, 1); got ${values.untilAlpha}`);
    if (values.keyFile === undefined || values.spec === undefined) {
      fail(
        'E_USAGE',
        "--until-alpha needs the owner's --key-file and --spec to score responses as they arrive",
      );
    }
  } else if (values.keyFile !== undefined || values.spec !== undefined) {
    fail('E_USAGE', '--key-file and --spec are only used with --until-alpha');
  }

  const bankPath = values.prompts ?? defaultPromptBankPath();
  const prompts = readPromptBank(bankPath);
  const client = new ProbeClient({
    endpoint: values.endpoint,
    apiKey,
    timeoutMs: timeoutSeconds * 1000,
    retries,
  });

  let monitor: SequentialMonitor | undefined;
  if (alpha !== undefined) {
    const spec = jsonArgument(values.spec as string, '--spec');
    const scheme = createScheme(spec, readKeyFile(values.keyFile as string));
    const tokenizer = await loadTokenizer(values.tokenizer);
    monitor = new SequentialMonitor(scheme, tokenizer, alpha);
  }

  const parameters: ProbeParameters = { api, model: values.model, temperature, maxTokens, seed };
  const store = EvidenceStore.open(values.store, { create: true });
  const err = process.stderr;
  let progress: Progress | undefined;
  const say = (line: string) => (progress === undefined ? err.write(`${line}\n`) : progress.message(line));
  try {
    const planned = prompts.length * samples;
    if (!values.json) {
      process.stdout.write(
        `probing ${values.model} at ${client.endpoint} (${api}): ${prompts.length} prompts × ${samples} sample${samples === 1 ? '' : 's'} = ${planned} responses, ${concurrency} at a time; ${keySource}\n`,
      );
    }
    client.setRetryReporter((event) =>
      say(
        `retry ${event.promptId}#${event.sample} (attempt ${event.attempt + 1} in ${formatDuration(event.delayMs / 1000)}): ${event.reason}`,
      ),
    );
    const summary = await runProbe({
      client,
      parameters,
      prompts,
      samples,
      store,
      concurrency,
      monitor,
      settings: {
        endpoint: client.endpoint,
        model: values.model,
        api,
        promptBank: bankPath,
        prompts: prompts.length,
        samples,
        concurrency,
        temperature,
        maxTokens,
        ...(seed === undefined ? {} : { seed }),
        timeoutSeconds,
        retries,
        apiKey: apiKey === undefined ? 'none' : `from $${values.apiKeyEnv ?? DEFAULT_KEY_ENV}`,
        ...(alpha === undefined ? {} : { untilAlpha: alpha, tokenizer: values.tokenizer }),
      },
      progress: (total) => {
        progress = new Progress(
          { write: (text) => err.write(text), isTTY: err.isTTY === true, columns: err.columns },
          total,
        );
        return progress;
      },
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ store: values.store, model: values.model, ...summary })}\n`);
      return 0;
    }
    const lines = [
      `stored ${summary.stored} new response${summary.stored === 1 ? '' : 's'} in ${formatDuration(summary.seconds)}${summary.alreadyStored > 0 ? ` (${summary.alreadyStored} were already stored)` : ''}; ${values.store} holds ${summary.total}`,
    ];
    if (summary.stopped !== null) {
      lines.push(
        `${summary.stopped.earlier ? 'already stopped in an earlier run' : 'stopped early'}: the e-process reached 10^${summary.stopped.log10EValue.toFixed(2)} ≥ 1/α = 10^${(-Math.log10(alpha as number)).toFixed(1)} after ${summary.stopped.responses} responses (${summary.stopped.scored} scored tokens): watermark detected (anytime-valid, p ≤ ${(alpha as number).toExponential()})`,
      );
    } else if (monitor !== undefined) {
      const state = monitor.state;
      lines.push(
        `the e-process did not reach 1/α: 10^${state.log10EValue.toFixed(2)} over ${state.scored} scored tokens (anytime-valid p = 10^${state.log10AnytimePValue.toFixed(2)}); probe more, or run verify`,
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    store.close();
  }
}
