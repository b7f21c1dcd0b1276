// tracemark demo UI: plain ES module, no build step. Talks to the same server's /v1 and /api routes.

const $ = (id) => document.getElementById(id);

// ---- Bearer token: a UI session from the server (loopback), else a token the user pastes (kept in this tab).

let bearer = sessionStorage.getItem('tracemark-token');
let bearerKind = bearer ? 'pasted' : null;
let sessionExpires = 0;

async function uiSession() {
  const response = await fetch('/api/ui-session', { method: 'POST', headers: { 'X-Tracemark-UI': '1' } });
  if (!response.ok) return false;
  const body = await response.json();
  bearer = body.token;
  bearerKind = 'session';
  // Renew a minute before it expires.
  sessionExpires = Date.now() + (body.expiresIn - 60) * 1000;
  return true;
}

async function ensureBearer() {
  if (bearerKind === 'pasted') return;
  if (bearer && Date.now() < sessionExpires) return;
  if (await uiSession()) {
    $('auth-state').textContent = 'UI session (loopback)';
    return;
  }
  $('token-box').hidden = false;
  $('auth-state').textContent = 'API token needed';
  throw new Error('No UI session: paste the API token above.');
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $('token-input').value.trim();
  if (!value) return;
  bearer = value;
  bearerKind = 'pasted';
  sessionStorage.setItem('tracemark-token', value);
  $('token-box').hidden = true;
  $('auth-state').textContent = 'API token (this tab)';
});

async function api(path, body, method = 'POST') {
  await ensureBearer();
  const send = () =>
    fetch(path, {
      method,
      headers: { Authorization: `Bearer ${bearer}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  let response = await send();
  if (response.status === 401 && bearerKind === 'session') {
    sessionExpires = 0;
    await ensureBearer();
    response = await send();
  }
  const json = await response.json();
  if (!response.ok) throw new Error(json.error?.message ?? `HTTP ${response.status}`);
  return json;
}

async function openAi(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      ...(bearerKind === 'pasted' ? { Authorization: `Bearer ${bearer}` } : {}),
    },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const json = await response.json().catch(() => ({}));
    throw new Error(json.error?.message ?? `HTTP ${response.status}`);
  }
  return response;
}

/** Streams a completion, calling onText with each piece of text; resolves with the whole text. */
async function streamCompletion(body, onText) {
  const response = await openAi('/v1/completions', { ...body, stream: true });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut = buffer.indexOf('\n\n');
    while (cut >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      cut = buffer.indexOf('\n\n');
      if (!event.startsWith('data: ')) continue;
      const data = event.slice(6);
      if (data === '[DONE]') return text;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      for (const choice of chunk.choices) {
        text += choice.text;
        onText(choice.text);
      }
    }
  }
  return text;
}

// ---- Formatting

/** p = 10^log10p, written so that 1e-300 and 1e-30000 both read well. */
function formatP(log10p) {
  if (log10p > -4) return (10 ** log10p).toPrecision(2);
  const exponent = Math.floor(log10p);
  const mantissa = 10 ** (log10p - exponent);
  return `${mantissa.toFixed(1)}e${exponent}`;
}

const ALPHA_LOG10 = -3;

function nullMean(law) {
  if (law.kind === 'bernoulli') return law.p;
  if (law.kind === 'binomial') return law.trials * law.p;
  return 1;
}

// ---- Header

let labInfo = null;

async function loadInfo() {
  const [info, lab] = await Promise.all([
    fetch('/api/info').then((r) => r.json()),
    fetch('/api/lab').then((r) => r.json()),
  ]);
  $('fingerprint').textContent = info.keyFingerprint;
  const s = info.spec;
  $('spec').textContent =
    s.scheme === 'kgw'
      ? `KGW γ=${s.gamma} δ=${s.delta} h=${s.contextWidth}${s.accountDelta ? ` + account layer δ=${s.accountDelta}` : ''}`
      : s.scheme;
  labInfo = lab;
  const select = $('suspect');
  for (const model of lab.models) {
    const option = document.createElement('option');
    option.value = model.id;
    option.textContent = model.id;
    if (model.id === 'tracemark-student-distilled') option.selected = true;
    select.append(option);
  }
  const d = lab.distillation;
  $('lab-facts').textContent =
    `tracemark-student-distilled was trained on ${d.teacherTokens.toLocaleString()} tokens of watermarked teacher output ` +
    `(${Math.round(d.share * 100)}% of its data) and ${d.cleanTokensDistilled.toLocaleString()} clean tokens; ` +
    `tracemark-student-clean on ${d.cleanTokensClean.toLocaleString()} clean tokens only. ` +
    'Probing sends held-out prompts to the suspect over /v1/completions, then runs the radioactivity test on its answers.';
  try {
    await ensureBearer();
  } catch {
    // the token box is shown
  }
}

// ---- 1. Generate

async function detectInto(text, prompt, target) {
  const el = $(target);
  el.className = 'verdict';
  el.textContent = 'detecting…';
  try {
    const result = await api('/api/detect', { text, prompt });
    const hit = result.log10PValue < ALPHA_LOG10;
    el.className = `verdict ${hit ? 'hit' : 'miss'}`;
    el.textContent = `p = ${formatP(result.log10PValue)} · z = ${result.zScore.toFixed(1)} · ${result.scored} scored tokens · ${hit ? 'watermarked' : 'no watermark found'}`;
  } catch (error) {
    el.textContent = error.message;
  }
}

$('generate-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = $('generate');
  button.disabled = true;
  const prompt = $('prompt').value;
  const body = {
    prompt,
    max_tokens: Number($('max-tokens').value),
    temperature: Number($('temperature').value),
    ...($('seed').value === '' ? {} : { seed: Number($('seed').value) }),
  };
  const sides = [
    ['tracemark-teacher', 'out-watermarked', 'verdict-watermarked'],
    ['tracemark-teacher-plain', 'out-plain', 'verdict-plain'],
  ];
  for (const [, out, verdict] of sides) {
    $(out).textContent = '';
    $(verdict).textContent = '';
  }
  try {
    await Promise.all(
      sides.map(async ([model, out, verdict]) => {
        const el = $(out);
        el.textContent = prompt;
        const text = await streamCompletion({ ...body, model }, (piece) => {
          el.textContent += piece;
        });
        el.dataset.prompt = prompt;
        el.dataset.generated = text;
        await detectInto(text, prompt, verdict);
      }),
    );
  } catch (error) {
    $('verdict-watermarked').textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

for (const button of document.querySelectorAll('.to-detector')) {
  button.addEventListener('click', () => {
    const el = $(button.dataset.target);
    $('detect-text').value = el.dataset.generated ?? el.textContent;
    $('detect-prompt').value = el.dataset.prompt ?? '';
    $('detect-form').requestSubmit();
    $('detect-panel').scrollIntoView({ behavior: 'smooth' });
  });
}

// ---- 2. Detect

function renderTokens(text, result) {
  const container = $('detect-tokens');
  container.replaceChildren();
  const mean = nullMean(result.nullLaw);
  // Per-token scores come only with the explain scope (the UI session, or the explain token).
  if (!result.perToken) {
    container.textContent = `${text}\n\n(per-token scores need the explain scope: this token gets the aggregates only)`;
    return;
  }
  let at = 0;
  for (const entry of result.perToken) {
    if (entry.start > at) container.append(text.slice(at, entry.start));
    const span = document.createElement('span');
    const piece = text.slice(entry.start, entry.end);
    if (piece.length === 0) continue;
    span.textContent = piece;
    let kind = 'skip';
    if (entry.counted) kind = entry.score > mean ? 'up' : 'down';
    span.className = `tok ${kind}`;
    span.dataset.counted = String(entry.counted);
    span.dataset.score = entry.score === null ? '' : String(entry.score);
    span.title = entry.counted
      ? `token ${entry.tokenId} · score ${entry.score} · counted`
      : `token ${entry.tokenId} · not counted (${entry.reason})`;
    container.append(span);
    at = entry.end;
  }
  if (at < text.length) container.append(text.slice(at));
}

$('detect-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = $('detect-text').value;
  const prompt = $('detect-prompt').value;
  const stats = $('detect-stats');
  $('detect-result').hidden = false;
  stats.textContent = 'detecting…';
  $('detect-tokens').replaceChildren();
  try {
    const result = await api('/api/detect', { text, ...(prompt ? { prompt } : {}) });
    const hit = result.log10PValue < ALPHA_LOG10;
    stats.replaceChildren();
    const add = (label, value, cls) => {
      const span = document.createElement('span');
      if (cls) span.className = cls;
      span.textContent = `${label} ${value}`;
      stats.append(span);
    };
    add('p =', formatP(result.log10PValue), hit ? 'hit' : 'miss');
    add('verdict:', hit ? 'watermarked (α = 1e-3)' : 'no watermark found', hit ? 'hit' : 'miss');
    add('z =', result.zScore.toFixed(2));
    add('scored', `${result.scored} of ${result.tokens} tokens`);
    add('green', `${result.scoreSum} (expected ${(nullMean(result.nullLaw) * result.scored).toFixed(0)})`);
    if (result.bestWindow)
      add('best window p =', `${formatP(result.bestWindow.correctedLog10PValue)} (corrected)`);
    renderTokens(text, result);
    stats.dataset.log10p = String(result.log10PValue);
  } catch (error) {
    stats.textContent = error.message;
  }
});

// ---- 3. Distillation

const COLORS = {
  'tracemark-student-distilled': '#c0392b',
  'tracemark-student-clean': '#2e86de',
  'tracemark-teacher': '#27ae60',
  'tracemark-teacher-plain': '#8e44ad',
};
const series = new Map();
const SUPERSCRIPT = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];

function drawPlot() {
  const svg = $('plot');
  const W = 720;
  const H = 300;
  const L = 56;
  const R = 16;
  const T = 14;
  const B = 40;
  const all = [...series.values()].flatMap((s) => s.points);
  const maxX = Math.max(1000, ...all.map((p) => p.scored));
  const maxY = Math.max(5, ...all.map((p) => -p.log10PValue)) * 1.08;
  const lx = (x) => L + ((Math.log10(Math.max(x, 10)) - 1) / (Math.log10(maxX) - 1)) * (W - L - R);
  const ly = (y) => H - B - (y / maxY) * (H - T - B);
  const ns = 'http://www.w3.org/2000/svg';
  const el = (name, attrs, text) => {
    const node = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  svg.replaceChildren();
  for (let d = 1; 10 ** d <= maxX; d++) {
    el('line', { class: 'grid', x1: lx(10 ** d), x2: lx(10 ** d), y1: T, y2: H - B });
    el('text', { x: lx(10 ** d), y: H - B + 16, 'text-anchor': 'middle' }, `10${SUPERSCRIPT[d] ?? `^${d}`}`);
  }
  const step = maxY > 40 ? 10 : maxY > 16 ? 5 : maxY > 8 ? 2 : 1;
  for (let y = 0; y <= maxY; y += step) {
    el('line', { class: 'grid', x1: L, x2: W - R, y1: ly(y), y2: ly(y) });
    el('text', { x: L - 6, y: ly(y) + 4, 'text-anchor': 'end' }, String(y));
  }
  el('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B });
  el('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B });
  el('line', { class: 'alpha', x1: L, x2: W - R, y1: ly(-ALPHA_LOG10), y2: ly(-ALPHA_LOG10) });
  el('text', { x: W - R - 4, y: ly(-ALPHA_LOG10) - 5, 'text-anchor': 'end' }, 'α = 1e-3');
  el('text', { x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle' }, 'scored tokens (log scale)');
  el(
    'text',
    { x: 14, y: (T + H - B) / 2, transform: `rotate(-90 14 ${(T + H - B) / 2})`, 'text-anchor': 'middle' },
    '−log10 p',
  );
  for (const [model, s] of series) {
    if (s.points.length === 0) continue;
    const d = s.points
      .map((p, i) => `${i === 0 ? 'M' : 'L'}${lx(p.scored).toFixed(1)},${ly(-p.log10PValue).toFixed(1)}`)
      .join(' ');
    el('path', { class: 'series', d, stroke: COLORS[model] ?? '#333', 'data-model': model });
  }
  const legend = $('plot-legend');
  legend.replaceChildren();
  for (const [model, s] of series) {
    const item = document.createElement('span');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = COLORS[model] ?? '#333';
    item.append(
      swatch,
      `${model}: p = ${formatP(s.log10PValue)} after ${s.scored.toLocaleString()} scored tokens`,
    );
    item.dataset.model = model;
    item.dataset.log10p = String(s.log10PValue);
    legend.append(item);
  }
}

$('distill-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = $('probe');
  button.disabled = true;
  const model = $('suspect').value;
  const count = Number($('probe-count').value);
  const tokens = Number($('probe-tokens').value);
  const progress = $('distill-progress');
  const prompts = labInfo.probePrompts.slice(0, count);
  const samples = [];
  try {
    for (let i = 0; i < prompts.length; i += 8) {
      progress.textContent = `probing ${model}: ${i}/${prompts.length} prompts answered…`;
      const batch = prompts.slice(i, i + 8);
      const response = await openAi('/v1/completions', {
        model,
        prompt: batch,
        max_tokens: tokens,
        seed: 1000 + i,
      });
      const json = await response.json();
      for (const choice of json.choices) samples.push({ prompt: batch[choice.index], output: choice.text });
    }
    progress.textContent = `running the radioactivity test on ${samples.length} answers, with the control keys…`;
    // The control keys (never used to watermark) must look like chance: a check on the test itself.
    let job = await api('/api/verify', { model, samples, controls: true });
    while (job.state === 'queued' || job.state === 'running') {
      await new Promise((resolve) => setTimeout(resolve, 250));
      job = await api(`/api/jobs/${job.id}`, undefined, 'GET');
    }
    if (job.state === 'failed') throw new Error(job.error?.message ?? 'the job failed');
    const r = job.result;
    series.set(model, { points: r.trajectory, log10PValue: r.log10PValue, scored: r.scored });
    drawPlot();
    // The verdict states the evidence (what its outputs carry), not how the model came to carry it.
    const controls = r.controls
      ? ` Control keys: ${r.controls.count} tested, Kolmogorov-Smirnov p = ${r.controls.ksPValue.toPrecision(2)} (${r.controls.passed ? 'uniform, as they should be' : 'NOT uniform: do not trust this test'}).`
      : '';
    const verdict =
      r.verdict?.text ??
      (r.log10PValue < ALPHA_LOG10
        ? `its outputs carry the watermark, p = ${formatP(r.log10PValue)}`
        : `no evidence that its outputs carry the watermark, p = ${formatP(r.log10PValue)}`);
    progress.textContent = `${model}: p = ${formatP(r.log10PValue)} over ${r.scored.toLocaleString()} scored tokens (${r.seen.toLocaleString()} seen): ${verdict}.${controls}`;
    progress.dataset.state = 'done';
  } catch (error) {
    progress.textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

drawPlot();
loadInfo().catch((error) => {
  $('auth-state').textContent = error.message;
});
