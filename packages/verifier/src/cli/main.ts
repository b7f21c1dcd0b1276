import { WatermarkError } from '@tracemark/watermark';
import { VerifierError } from '../errors';

const USAGE = `usage: tracemark <command> [options]

commands:
  keygen --out <file>              write a new master key file (mode 0600; never overwrites)
  detect [file|-] --spec <json|file> (--key-file <file> | --key <hex> | $TRACEMARK_KEY)
         [--tokenizer o200k_base|cl100k_base|<tokenizer.json>] [--ids <json|file>] [--prompt-file <file>]
         [--tenant <id>]... [--dedup pair|context|none] [--eos <id>] [--no-window]
         [--alpha <a>] [--fail-on-detect] [--json] [--no-color]
  lab [--quick] [--out <dir>] [--corpus <dir|file>] [--seed <s>] [--scheme <a,b>] [--rho <r1,r2>] [--samples <n>]
      [--probes <n>] [--controls <n>] [--filter-width <w>] [--workers <n>] [--quiet]
                                   the radioactivity experiment: results.json, results.md, SVG plots (docs/radioactivity.md)
  report --in <verify.json|-> --out <dir> (--key-file <file> | --key <hex> | $TRACEMARK_KEY)
         [--samples <jsonl> [--text-field text]] [--max-samples 3] [--label <text>] [--alpha <a>]
         [--tokenizer <name>] [--tenant <id>]
                                   sign bundle.json (evidence, HMAC-SHA256) and write report.html
  report --check <bundle.json> (--key-file <file> | --key <hex> | $TRACEMARK_KEY)
                                   exit 0 valid, 1 invalid signature or altered content
  scan <dir|file|-> --spec <json|file> (--key-file <file> | --key <hex> | $TRACEMARK_KEY)
         [--jsonl [--text-field text] [--id-field id]] [--workers <n>] [--alpha <a>]
         [--tokenizer <name>] [--tenant <id>] [--dedup pair|context|none] [--summary-json]
                                   one JSON line per document on stdout, a summary on stderr
  probe --endpoint <base URL> --model <name> --store <evidence.db> [--prompts <bank.jsonl>] [--samples <n>]
         [--concurrency 4] [--temperature 0.7] [--max-tokens 256] [--api chat|completions]
         [--api-key-env OPENAI_API_KEY] [--timeout 120] [--retries 5] [--seed <n>] [--json]
         [--until-alpha <a> --key-file <file> --spec <json|file> [--tokenizer <name>]]
                                   ask a suspect model over the OpenAI API; every response kept (resumable)
  verify --store <evidence.db> --key-file <file> --spec <json|file> [--tenants <file>] [--tokenizer <name>]
         [--controls 50] [--alpha 1e-3] [--controls-alpha 0.01] [--threads <n>] [--fail-on-detect] [--json]
         [--owner-text <file|dir|file.jsonl> [--filter-width 4]]
                                   radioactivity test of the stored outputs, with control keys and attribution
  power --effect <e> [--gamma 0.25] [--alpha 1e-6] [--power 0.9] [--json]
                                   scored tokens a fixed-size green-count test needs (exact and normal approx.)

exit codes: 0 ran (watermark or not), 1 detected at --alpha with --fail-on-detect, 2 usage or input error`;

/** Runs the CLI; returns the exit code. Every failure becomes one line on stderr, never a stack trace. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'keygen':
        return (await import('./keygen')).runKeygen(rest);
      case 'detect':
        return await (await import('./detect')).runDetect(rest);
      case 'lab':
        return await (await import('../lab/cli')).runLabCommand(rest);
      case 'report':
        return await (await import('../report/cli')).runReport(rest);
      case 'scan':
        return await (await import('../scan/cli')).runScan(rest);
      case 'probe':
        return await (await import('../probe/cli')).runProbeCommand(rest);
      case 'verify':
        return await (await import('../verify/cli')).runVerifyCommand(rest);
      case 'power':
        return (await import('../verify/power-cli')).runPowerCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`tracemark: unknown command "${command}"\n${USAGE}\n`);
        return 2;
    }
  } catch (error) {
    process.stderr.write(`tracemark: ${messageOf(error)}\n`);
    return 2;
  }
}

function messageOf(error: unknown): string {
  if (error instanceof VerifierError || error instanceof WatermarkError) return error.message;
  if (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) {
    return error.message.split('\n')[0];
  }
  if (error instanceof RangeError) return error.message;
  return `internal error: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
}
