import { parseKeyText, readKeyFile } from '@tracemark/verifier';
import type { MasterKey } from '@tracemark/watermark';
import { fail } from './errors';

/** The master key from --key-file, --key or $TRACEMARK_KEY (detect, scan and report read it alike). */
export function masterKeyFromOptions(values: { key?: string; keyFile?: string }, command: string): MasterKey {
  if (values.key !== undefined && values.keyFile !== undefined)
    fail('E_USAGE', 'give --key or --key-file, not both');
  if (values.keyFile !== undefined) return readKeyFile(values.keyFile);
  if (values.key !== undefined) return parseKeyText(values.key, '--key');
  const fromEnvironment = process.env.TRACEMARK_KEY;
  if (fromEnvironment !== undefined && fromEnvironment !== '')
    return parseKeyText(fromEnvironment, '$TRACEMARK_KEY');
  return fail('E_USAGE', `${command} needs a key: --key-file <file>, --key <hex>, or $TRACEMARK_KEY`);
}
