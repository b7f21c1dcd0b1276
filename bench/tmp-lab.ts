import {
  generateSamples,
  gutenbergCorpus,
  o200kBase,
  studentDocuments,
  trainNgram,
  trainStudent,
} from '@tracemark/ngram';
import { createScheme, MasterKey } from '@tracemark/watermark';
import {
  buildWindowFilter,
  kolmogorovSmirnovUniform,
  radioactivityTest,
} from '../packages/verifier/src/index';

let t = performance.now();
const lap = (m: string) => {
  console.log(m, ((performance.now() - t) / 1000).toFixed(1), 's');
  t = performance.now();
};
const train = gutenbergCorpus('train').map((d) => o200kBase.encode(d.text));
const held = gutenbergCorpus('heldOut')
  .map((d) => o200kBase.encode(d.text))
  .filter((x) => x.length >= 24);
lap('tokenize');
const teacher = trainNgram(train, { order: 4, tokenizer: null, vocabSize: 200019 });
lap('teacher');
const key = MasterKey.parse('77'.repeat(32));
const spec = { scheme: 'kgw', vocabSize: 200019, gamma: 0.25, delta: 2, contextWidth: 1 };
const scheme = createScheme(spec, key);
const T = Number(process.env.T ?? 100000);
const L = 100;
const prompts = held.slice(0, Math.ceil(T / L)).map((x) => x.slice(0, 16));
const wm = generateSamples(teacher, scheme, prompts, { maxTokens: L, seed: 'teacher' });
lap(`teacher gen ${wm.length * L}`);
const filter = buildWindowFilter(
  wm.map((s) => [...s.prompt.slice(-3), ...s.output]),
  Number(process.env.FW ?? 3),
);
const shuffled = [...train].sort((a, b) => ((a.length * 7919) % 101) - ((b.length * 7919) % 101));
const chunks: number[][] = [];
for (const p of held) for (let o = 0; o + 16 <= p.length; o += 16) chunks.push(p.slice(o, o + 16));
const probePrompts = chunks.slice(-Number(process.env.P ?? 1200));
console.log('chunks', chunks.length);
for (const rho of (process.env.RHOS ?? '0.05').split(',').map(Number)) {
  const student = trainStudent(
    studentDocuments(
      shuffled,
      wm.map((s) => s.output),
      { rho, totalTokens: T },
    ),
    Number(process.env.ORDER ?? 3),
    200019,
  );
  const outs = generateSamples(student, null, probePrompts, { maxTokens: 100, seed: `probe-${rho}` });
  const r1 = radioactivityTest(outs, { scheme });
  const r2 = radioactivityTest(outs, { scheme, filter });
  const ctrl = Array.from(
    { length: 60 },
    (_, j) =>
      radioactivityTest(outs, { scheme: createScheme(spec, key, { tenant: `control-${j}` }), filter }).pValue,
  );
  const c = { log10PValue: Math.log10(Math.min(...ctrl)) };
  console.log(
    'KS',
    kolmogorovSmirnovUniform(ctrl),
    'min',
    Math.min(...ctrl),
    'below .05',
    ctrl.filter((p) => p < 0.05).length,
  );
  console.log(
    rho,
    'nofilter',
    r1.log10PValue.toFixed(1),
    r1.scored,
    'filter',
    r2.log10PValue.toFixed(1),
    r2.scored,
    'control',
    c.log10PValue.toFixed(2),
  );
  lap('student');
}
