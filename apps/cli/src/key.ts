import { parseKeyText, readKeyFile } from '@tracemark/verifier';
import type { MasterKey } from '@tracemark/watermark';
import { fail } from './errors';
import { KEY_OPTION_REMOVED } from './main';

export { KEY_OPTION_REMOVED };

/** The master key from --key-file or $TRACEMARK_KEY (detect, scan and report read it alike). */
export function masterKeyFromOptions(
  values: { key?: unknown; keyFile?: string },
  command: string,
): MasterKey {
  if (values.key !== undefined) fail('E_USAGE', KEY_OPTION_REMOVED);
  if (values.keyFile !== undefined) return readKeyFile(values.keyFile);
  const fromEnvironment = process.env.TRACEMARK_KEY;
  if (fromEnvironment !== undefined && fromEnvironment !== '')
    return parseKeyText(fromEnvironment, '$TRACEMARK_KEY');
  return fail('E_USAGE', `${command} needs a key: --key-file <file> or $TRACEMARK_KEY`);
}
