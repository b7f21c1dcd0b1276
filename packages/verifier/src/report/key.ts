import type { MasterKey } from '@tracemark/watermark';
import { fail } from '../errors';
import { parseKeyText, readKeyFile } from '../keyfile';

/** The master key from --key-file, --key or $TRACEMARK_KEY, as `tracemark detect` reads it. */
export function masterKeyFromOptions(
  values: { key?: string; 'key-file'?: string },
  command: string,
): MasterKey {
  if (values.key !== undefined && values['key-file'] !== undefined)
    fail('E_USAGE', 'give --key or --key-file, not both');
  if (values['key-file'] !== undefined) return readKeyFile(values['key-file']);
  if (values.key !== undefined) return parseKeyText(values.key, '--key');
  const fromEnvironment = process.env.TRACEMARK_KEY;
  if (fromEnvironment !== undefined && fromEnvironment !== '')
    return parseKeyText(fromEnvironment, '$TRACEMARK_KEY');
  return fail('E_USAGE', `${command} needs a key: --key-file <file>, --key <hex>, or $TRACEMARK_KEY`);
}
