/**
 * One fresh-process run of tracemark's hf-kgw detection for the interop benchmark, the counterpart of
 * bench/reference/hf_kgw_detect.py: reads the same job file, times detectInterop (the built package) on it
 * after imports and setup, and prints one JSON line: seconds, tokens scored, green count.
 */
import { readFileSync } from 'node:fs';
import { detectInterop } from '@tracemark/verifier';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as {
  vocabSize: number;
  hashingKey: number;
  greenlistRatio: number;
  contextWidth: number;
  ids: number[];
};
const spec = {
  scheme: 'hf-kgw',
  vocabSize: job.vocabSize,
  seedingScheme: 'lefthash',
  contextWidth: job.contextWidth,
  hashingKey: job.hashingKey,
  greenlistRatio: job.greenlistRatio,
};
const start = performance.now();
const detection = detectInterop(job.ids, spec);
const seconds = (performance.now() - start) / 1000;
if (detection.scheme !== 'hf-kgw') throw new Error('expected an hf-kgw detection');
console.log(JSON.stringify({ seconds, tokens: detection.numTokensScored, green: detection.numGreenTokens }));
