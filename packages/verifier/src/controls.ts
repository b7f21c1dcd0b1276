import { createHash } from 'node:crypto';
import { MasterKey } from '@tracemark/watermark';
import { fail } from './errors';

/**
 * Keys that were never used to watermark anything, for negative controls: the tenants `control-0`,
 * `control-1`, … of a control master key derived from the owner's master key with
 * `deriveBytes('controls', …)`. They belong to no real tenant (a tenant key of the owner's master key cannot
 * equal a key of another master key), so under every hypothesis the suspect's text is independent of them
 * and their p-values must look uniform.
 */
export const CONTROL_CONTEXT = 'tracemark/verify-controls/v1';

export function controlMasterKey(master: MasterKey): MasterKey {
  return MasterKey.fromBytes(master.deriveBytes('controls', CONTROL_CONTEXT, 32));
}

/**
 * The tenant id of the index-th control key; a group (e.g. the lab's `rho0.05`) gives each family of tests
 * keys of its own, so that controls pooled over families are independent draws.
 */
export function controlTenant(index: number, group?: string): string {
  return group === undefined ? `control-${index}` : `control-${group}-${index}`;
}

/**
 * A uniform number in (0, 1) fixed by a public label (a key fingerprint): the randomization of a control's
 * discrete p-value, reproducible from run to run.
 */
export function labelUniform(label: string): number {
  const digest = createHash('sha256').update(`tracemark/control-randomization/v1\0${label}`).digest();
  return (digest.readUIntBE(0, 6) + 0.5) / 2 ** 48;
}

/**
 * Tenant ids from a tenants file: one id per line (blank lines and lines starting with '#' are skipped), or a
 * JSON array of strings. Ids are unique, non-empty and without NUL characters (what tenant keys accept).
 */
export function parseTenantList(text: string, source: string): string[] {
  const trimmed = text.trim();
  let ids: string[];
  if (trimmed.startsWith('[')) {
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch {
      fail('E_INPUT', `${source} is not a valid JSON array of tenant ids`);
    }
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      fail('E_INPUT', `${source} must be a JSON array of strings`);
    }
    ids = value as string[];
  } else {
    ids = [];
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].replace(/\r$/, '').trim();
      if (line === '' || line.startsWith('#')) continue;
      ids.push(line);
    }
  }
  const seen = new Set<string>();
  for (const id of ids) {
    if (id === '' || id.includes('\0'))
      fail('E_INPUT', `${source}: tenant ids must be non-empty, without NUL characters`);
    if (seen.has(id)) fail('E_INPUT', `${source}: tenant id "${id.slice(0, 100)}" appears twice`);
    seen.add(id);
  }
  if (ids.length === 0) fail('E_INPUT', `${source} lists no tenant ids`);
  return ids;
}
