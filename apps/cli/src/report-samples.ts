import {
  detectText,
  type HighlightedSample,
  loadTokenizer,
  readTextFile,
  type SampleEvidence,
  type SampleText,
  sha256Hex,
  VerifierError,
} from '@tracemark/verifier';
import { createScheme, type MasterKey, type Scheme, WatermarkError } from '@tracemark/watermark';
import { parseJsonlLine } from './scan/sources';

/** Texts to highlight from a JSON Lines file: one object per line with the text in `textField`. */
export function readSamplesFile(path: string, textField: string): SampleText[] {
  const lines = readTextFile(path, 'samples file').split(/\r?\n/);
  const out: SampleText[] = [];
  lines.forEach((line, i) => {
    const document = parseJsonlLine(line, i + 1, path, textField, 'id');
    if (document === null) return;
    const id = document.id === `${path}:${i + 1}` ? `line ${i + 1}` : document.id;
    const prompt = (JSON.parse(line) as { prompt?: unknown }).prompt;
    out.push({ id, text: document.text, ...(typeof prompt === 'string' ? { prompt } : {}) });
  });
  return out;
}

export interface SampleOptions {
  key: MasterKey;
  spec: unknown;
  tokenizer: string;
  tenant?: string;
  max: number;
}

/**
 * Detects the first `max` samples with the key and spec (each on its own, with its prompt's windows not
 * scored); samples too short or empty to score are skipped and named in `skipped`.
 */
export async function highlightSamples(
  samples: SampleText[],
  options: SampleOptions,
): Promise<{ highlighted: HighlightedSample[]; evidence: SampleEvidence[]; skipped: string[] }> {
  const highlighted: HighlightedSample[] = [];
  const evidence: SampleEvidence[] = [];
  const skipped: string[] = [];
  if (samples.length === 0 || options.max === 0) return { highlighted, evidence, skipped };
  let scheme: Scheme;
  try {
    scheme = createScheme(
      options.spec,
      options.key,
      options.tenant === undefined ? {} : { tenant: options.tenant },
    );
  } catch (error) {
    // An interop spec (keyed by its own configuration) or another scheme this key cannot build: show no tokens.
    if (!(error instanceof WatermarkError)) throw error;
    return { highlighted, evidence, skipped: samples.map((s) => `${s.id}: ${error.message}`) };
  }
  const tokenizer = await loadTokenizer(options.tokenizer);
  for (const sample of samples) {
    if (highlighted.length >= options.max) break;
    let result: HighlightedSample['result'];
    try {
      result = detectText(sample.text, {
        scheme,
        tokenizer,
        ...(sample.prompt === undefined ? {} : { prompt: sample.prompt }),
      });
    } catch (error) {
      if (error instanceof VerifierError && (error.code === 'E_EMPTY_TEXT' || error.code === 'E_TOO_SHORT')) {
        skipped.push(`${sample.id}: ${error.message}`);
        continue;
      }
      throw error;
    }
    highlighted.push({ id: sample.id, text: sample.text, result });
    evidence.push({
      id: sample.id,
      sha256: sha256Hex(sample.text),
      tokens: result.tokens,
      scored: result.scored,
      pValue: result.pValue,
      log10PValue: result.log10PValue,
    });
  }
  return { highlighted, evidence, skipped };
}
