import { writeKeyFile } from '@tracemark/verifier';
import { MasterKey } from '@tracemark/watermark';
import { fail } from '../errors';

export interface KeygenOptions {
  out?: string;
}

export function runKeygen(values: KeygenOptions, operands: string[]): number {
  if (operands.length > 0) fail('E_USAGE', `keygen takes no positional arguments; got ${operands[0]}`);
  if (values.out === undefined) fail('E_USAGE', 'keygen needs --out <file>');
  const key = MasterKey.generate();
  writeKeyFile(values.out, key);
  process.stdout.write(`wrote ${values.out} (mode 0600), fingerprint ${key.fingerprint}\n`);
  return 0;
}
