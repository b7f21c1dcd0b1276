import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OPENAI_ENCODINGS, rankFileName, rankFileSource } from '../src/tokenizers/openai';
import { buildRankFile } from '../src/tokenizers/rank-file';

/** Writes each OpenAI encoding's rank file into `dir` (the build's dist/, beside the bundle that reads it). */
export async function writeRankFiles(dir: string): Promise<void> {
  for (const name of OPENAI_ENCODINGS) {
    writeFileSync(join(dir, rankFileName(name)), buildRankFile(await rankFileSource(name)));
  }
}
