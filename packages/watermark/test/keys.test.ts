import { createHash, hkdfSync } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createScheme, MasterKey, WatermarkError } from '../src/index';

const HEX = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return error instanceof WatermarkError ? error.code : 'not a WatermarkError';
  }
  return undefined;
}

describe('MasterKey', () => {
  it('generates 32 random bytes, different each time', () => {
    const a = MasterKey.generate();
    const b = MasterKey.generate();
    expect(a.exportHex()).toMatch(/^[0-9a-f]{64}$/);
    expect(a.equals(b)).toBe(false);
    expect(a.equals(MasterKey.parse(a.exportHex()))).toBe(true);
  });

  it('round-trips hex, base64 and base64url', () => {
    const key = MasterKey.parse(HEX);
    expect(key.exportHex()).toBe(HEX);
    const b64 = key.exportBase64();
    expect(b64).toBe(Buffer.from(HEX, 'hex').toString('base64'));
    expect(MasterKey.parse(b64).exportHex()).toBe(HEX);
    expect(MasterKey.parse(Buffer.from(HEX, 'hex').toString('base64url')).exportHex()).toBe(HEX);
    expect(MasterKey.parse(`  ${HEX.toUpperCase()}\n`).exportHex()).toBe(HEX);
  });

  it('fingerprints with a domain-separated SHA-256 (checked against node:crypto)', () => {
    const key = MasterKey.parse(HEX);
    const expected = createHash('sha256')
      .update(Buffer.concat([Buffer.from('tracemark/fingerprint/v1\0'), Buffer.from(HEX, 'hex')]))
      .digest('hex')
      .slice(0, 16);
    expect(key.fingerprint).toBe(`tm1:${expected}`);
    const plain = createHash('sha256').update(Buffer.from(HEX, 'hex')).digest('hex');
    expect(plain.startsWith(expected)).toBe(false);
  });

  it('derives sub-keys with HKDF-SHA256 (checked against node:crypto)', () => {
    const key = MasterKey.parse(HEX);
    const ours = key.deriveBytes('scheme-prf', 'context', 16);
    const theirs = new Uint8Array(
      hkdfSync(
        'sha256',
        Buffer.from(HEX, 'hex'),
        Buffer.from('tracemark/v1'),
        Buffer.from('scheme-prf\0context'),
        16,
      ),
    );
    expect(Array.from(ours)).toEqual(Array.from(theirs));
  });

  it('rejects malformed keys without repeating them', () => {
    const secretLooking = `${HEX.slice(0, 62)}zz`;
    for (const bad of [secretLooking, HEX.slice(2), '', 'not a key', `${HEX}00`]) {
      let message = '';
      try {
        MasterKey.parse(bad);
      } catch (error) {
        expect(error).toBeInstanceOf(WatermarkError);
        expect((error as WatermarkError).code).toBe('E_KEY_FORMAT');
        message = (error as Error).message;
      }
      expect(message).toMatch(/malformed master key/);
      if (bad.length > 8) expect(message).not.toContain(bad.slice(0, 16));
    }
    expect(codeOf(() => MasterKey.fromBytes(new Uint8Array(31)))).toBe('E_KEY_FORMAT');
  });

  it('never shows key material in JSON, strings, inspect, logs or errors', () => {
    const key = MasterKey.parse(HEX);
    const b64 = key.exportBase64();
    const scheme = createScheme({ scheme: 'kgw', vocabSize: 100 }, key, { tenant: 'acme' });
    const rendered = [
      JSON.stringify({ key, scheme }),
      String(key),
      `${key}`,
      inspect(key, { showHidden: true, depth: 5 }),
      inspect(scheme, { showHidden: true, depth: 5 }),
      JSON.stringify(Object.entries(key)),
    ];
    const logged: string[] = [];
    const original = console.log;
    console.log = (...args: unknown[]) => logged.push(args.map((a) => inspect(a, { depth: 5 })).join(' '));
    try {
      console.log(key, { nested: { key } }, scheme);
    } finally {
      console.log = original;
    }
    rendered.push(...logged);
    try {
      scheme.score([1, 100], 1);
    } catch (error) {
      rendered.push(String(error), (error as Error).stack ?? '');
    }
    for (const text of rendered) {
      expect(text).not.toContain(HEX);
      expect(text).not.toContain(b64);
      expect(text).not.toContain(HEX.slice(0, 16));
    }
    expect(rendered[0]).toContain(key.fingerprint);
  });

  it('gives every tenant and every spec its own scheme key', () => {
    const key = MasterKey.parse(HEX);
    const spec = { scheme: 'kgw', vocabSize: 1000 };
    const fingerprints = new Set([
      createScheme(spec, key).keyFingerprint,
      createScheme(spec, key, { tenant: 'a' }).keyFingerprint,
      createScheme(spec, key, { tenant: 'b' }).keyFingerprint,
      createScheme({ ...spec, gamma: 0.5 }, key).keyFingerprint,
      createScheme(spec, MasterKey.generate()).keyFingerprint,
    ]);
    expect(fingerprints.size).toBe(5);
    expect(createScheme(spec, key, { tenant: 'a' }).keyFingerprint).toBe(
      createScheme({ ...spec, delta: 2 }, key, { tenant: 'a' }).keyFingerprint,
    );
    expect(codeOf(() => createScheme(spec, key, { tenant: '' }))).toBe('E_KEY_FORMAT');
  });
});
