import { WatermarkError } from '@tracemark/watermark';
import { VerifierError } from '../errors';

const USAGE = `usage: tracemark <command> [options]

commands:
  keygen --out <file>              write a new master key file (mode 0600; never overwrites)
  detect [file|-] --spec <json|file> (--key-file <file> | --key <hex> | $TRACEMARK_KEY)
         [--tokenizer o200k_base|cl100k_base|<tokenizer.json>] [--ids <json|file>] [--prompt-file <file>]
         [--tenant <id>]... [--dedup pair|context|none] [--eos <id>] [--no-window]
         [--alpha <a>] [--fail-on-detect] [--json] [--no-color]

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
