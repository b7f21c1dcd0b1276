import { fail } from './errors';

/** A comma-separated option value as its items (undefined when the option is absent); no item may be empty. */
export function listValue(text: string | undefined, name: string): string[] | undefined {
  if (text === undefined) return undefined;
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s === ''))
    fail('E_USAGE', `${name} must be a comma-separated list; got ${JSON.stringify(text)}`);
  return items;
}

/** A numeric option value (undefined when absent): any finite number, or an integer when `integer`. */
export function numberValue(text: string | undefined, name: string, integer: boolean): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value)))
    fail('E_USAGE', `${name} must be ${integer ? 'an integer' : 'a number'}; got ${JSON.stringify(text)}`);
  return value;
}
