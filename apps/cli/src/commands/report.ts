import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  checkEvidence,
  evidenceBody,
  formatPValue,
  parseVerifySummary,
  readStdin,
  readTextFile,
  renderReportHtml,
  signEvidence,
  type VerifySummary,
} from '@tracemark/verifier';
import { createScheme, type MasterKey } from '@tracemark/watermark';
import packageJson from '../../package.json';
import { fail } from '../errors';
import { masterKeyFromOptions } from '../key';
import { highlightSamples, readSamplesFile } from '../report-samples';

/** The options of `tracemark report`, as commander parses them (declared in main.ts). */
export interface ReportOptions {
  in?: string;
  out?: string;
  check?: string;
  key?: string;
  keyFile?: string;
  samples?: string;
  textField: string;
  maxSamples: string;
  tokenizer?: string;
  tenant?: string;
  label?: string;
  alpha: string;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    fail('E_INPUT', `${what} is not valid JSON`);
  }
}

/**
 * The verify result must have been made with this key: its fingerprint is the master key's, or a scheme
 * key derived from it (with or without one of its tenants). Interop specs carry no tracemark key.
 */
function assertSameKey(summary: VerifySummary, key: MasterKey, source: string): void {
  const names = new Set([key.fingerprint]);
  try {
    names.add(createScheme(summary.spec, key).keyFingerprint);
    for (const tenant of summary.tenants ?? [])
      names.add(createScheme(summary.spec, key, { tenant: tenant.id }).keyFingerprint);
  } catch {
    // Not a tracemark spec: only the master fingerprint can match.
  }
  if (names.has(summary.keyFingerprint) || summary.masterFingerprint === key.fingerprint) return;
  fail(
    'E_INPUT',
    `${source} names key ${summary.keyFingerprint}, which is not derived from the given key ${key.fingerprint}`,
  );
}

async function runCheck(path: string, values: ReportOptions): Promise<number> {
  const bundle = parseJson(readTextFile(path, 'bundle'), path);
  const key = masterKeyFromOptions(values, 'report --check');
  const result = checkEvidence(bundle, key, path);
  if (result.valid) {
    const body = (
      bundle as {
        body: {
          pValue: number;
          log10PValue: number;
          createdAt: string;
          verdict?: { pValueCited: number; log10PValueCited: number; basis: string };
        };
      }
    ).body;
    // v1 bundles carry only the fixed-size p-value; later ones the p-value their verdict cites.
    const p =
      body.verdict === undefined
        ? `p-value ${formatPValue(body.pValue, body.log10PValue)}`
        : `${body.verdict.basis === 'anytime' ? 'anytime-valid ' : ''}p-value ${formatPValue(body.verdict.pValueCited, body.verdict.log10PValueCited)}`;
    process.stdout.write(
      `valid: ${path} is signed by ${result.signedBy} (created ${body.createdAt}; ${p})\n`,
    );
    return 0;
  }
  process.stdout.write(`INVALID: ${path}: ${result.reason}\n`);
  return 1;
}

export async function runReport(values: ReportOptions, positionals: string[]): Promise<number> {
  if (positionals.length > 0) fail('E_USAGE', `report takes no positional arguments; got ${positionals[0]}`);
  if (values.check !== undefined) {
    if (values.in !== undefined || values.out !== undefined)
      fail('E_USAGE', 'give --check <bundle> alone, or --in and --out to make a report');
    return runCheck(values.check, values);
  }
  if (values.in === undefined) fail('E_USAGE', 'report needs --in <verify.json|-> (or --check <bundle>)');
  if (values.out === undefined) fail('E_USAGE', 'report needs --out <dir>');
  const alpha = Number(values.alpha);
  if (!(alpha > 0 && alpha < 1)) fail('E_USAGE', `--alpha must be a number in (0, 1); got ${values.alpha}`);
  const maxSamples = Number(values.maxSamples);
  if (!(Number.isInteger(maxSamples) && maxSamples >= 0))
    fail('E_USAGE', `--max-samples must be a non-negative integer; got ${values.maxSamples}`);

  const source = values.in === '-' ? 'standard input' : values.in;
  if (values.in === '-' && process.stdin.isTTY)
    fail('E_USAGE', 'no verify result: pipe it into standard input');
  const text = values.in === '-' ? await readStdin() : readTextFile(values.in, 'verify result');
  const summary = parseVerifySummary(parseJson(text, source), source);
  const key = masterKeyFromOptions(values, 'report');
  assertSameKey(summary, key, source);

  const samples =
    values.samples === undefined
      ? (summary.samples ?? [])
      : readSamplesFile(values.samples, values.textField);
  const best = summary.tenants?.length
    ? summary.tenants.reduce((a, b) => (b.adjustedPValue < a.adjustedPValue ? b : a)).id
    : undefined;
  const tenant = values.tenant ?? best;
  const { highlighted, evidence, skipped } = await highlightSamples(samples, {
    key,
    spec: summary.spec,
    tokenizer: values.tokenizer ?? summary.tokenizer,
    ...(tenant === undefined ? {} : { tenant }),
    max: maxSamples,
  });

  const body = evidenceBody(summary, key, {
    toolVersion: packageJson.version,
    alpha,
    ...(values.label === undefined ? {} : { label: values.label }),
    ...(evidence.length === 0 ? {} : { samples: evidence }),
  });
  const bundle = signEvidence(body, key);
  try {
    mkdirSync(values.out, { recursive: true });
    // Evidence names the suspect and carries samples: readable by the owner only, like the evidence store.
    for (const [name, content] of [
      ['bundle.json', `${JSON.stringify(bundle, null, 2)}\n`],
      ['report.html', renderReportHtml(bundle, highlighted)],
    ]) {
      const path = join(values.out, name);
      writeFileSync(path, content, { mode: 0o600 });
      chmodSync(path, 0o600);
    }
  } catch (error) {
    fail(
      'E_INPUT',
      `cannot write to ${values.out}: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}`,
    );
  }
  process.stdout.write(
    `wrote ${join(values.out, 'bundle.json')} (signed by ${key.fingerprint}) and ${join(values.out, 'report.html')}` +
      ` (${highlighted.length} sample${highlighted.length === 1 ? '' : 's'} highlighted${skipped.length > 0 ? `, ${skipped.length} not: ${skipped[0]}${skipped.length > 1 ? ', …' : ''}` : ''})\n`,
  );
  return 0;
}
