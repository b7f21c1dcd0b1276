import { parseArgs } from 'node:util';
import { MasterKey } from '@tracemark/watermark';
import { fail } from '../errors';
import { writeKeyFile } from '../keyfile';

export function runKeygen(args: string[]): number {
  const { values } = parseArgs({ args, options: { out: { type: 'string' } }, allowPositionals: false });
  if (values.out === undefined) fail('E_USAGE', 'keygen needs --out <file>');
  const key = MasterKey.generate();
  writeKeyFile(values.out, key);
  process.stdout.write(`wrote ${values.out} (mode 0600), fingerprint ${key.fingerprint}\n`);
  return 0;
}
