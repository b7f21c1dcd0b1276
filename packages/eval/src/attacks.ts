import { fail } from './errors';

/** The edits the harness applies to a watermarked text before detection. */
export const ATTACK_KINDS = [
  'none',
  'sub',
  'sub-model',
  'del',
  'ins',
  'ins-model',
  'copypaste',
  'trunc',
  'paraphrase',
  'rewrite',
] as const;

export type AttackKind = (typeof ATTACK_KINDS)[number];

/** An attack and its strength in (0, 1) (0 for 'none'); `label` is its canonical name, e.g. 'sub-0.3'. */
export interface Attack {
  kind: AttackKind;
  strength: number;
  label: string;
}

/** How many tries a substitution gets to draw a token that differs from the original. */
const MAX_REPLACEMENT_TRIES = 8;

// Kinds that take a strength; the longest names first so 'sub-model-0.1' is not read as 'sub' + 'model-0.1'.
const STRENGTH_LABEL = /^([a-z]+(?:-model)?)-(\d+(?:\.\d+)?|\.\d+)$/;

/** Reads 'none' or '<kind>-<strength>' with the strength in (0, 1); anything else is an E_USAGE error. */
export function parseAttack(label: string): Attack {
  const text = label.trim();
  if (text === 'none') return { kind: 'none', strength: 0, label: 'none' };
  // A rewrite by a model behind an OpenAI-compatible endpoint: the harness applies it, with the instruction.
  if (text === 'rewrite') return { kind: 'rewrite', strength: 0, label: 'rewrite' };
  const shown = JSON.stringify(label); // quoted so the message stays on one line whatever the input
  const match = STRENGTH_LABEL.exec(text);
  if (match === null) {
    fail(
      'E_USAGE',
      `attack ${shown} is not 'none', 'rewrite' or <kind>-<strength> (kinds: ${ATTACK_KINDS.filter((k) => k !== 'none' && k !== 'rewrite').join(', ')})`,
    );
  }
  const kind = match[1] as AttackKind;
  if (kind === 'none' || kind === 'rewrite') fail('E_USAGE', `attack ${shown}: '${kind}' takes no strength`);
  if (!(ATTACK_KINDS as readonly string[]).includes(kind)) {
    fail('E_USAGE', `attack ${shown} has an unknown kind; kinds: ${ATTACK_KINDS.join(', ')}`);
  }
  const strength = Number(match[2]);
  if (!(strength > 0 && strength < 1)) {
    fail('E_USAGE', `attack ${shown} needs a strength in (0, 1); got ${match[2]}`);
  }
  return { kind, strength, label: `${kind}-${strength}` };
}

/** A comma-separated list of attacks, de-duplicated by label, in the order written. */
export function parseAttacks(list: string): Attack[] {
  const seen = new Set<string>();
  const attacks: Attack[] = [];
  for (const part of list.split(',')) {
    const attack = parseAttack(part);
    if (seen.has(attack.label)) continue;
    seen.add(attack.label);
    attacks.push(attack);
  }
  return attacks;
}

export interface AttackContext {
  rng: () => number;
  /** A replacement token drawn at random (the harness draws from the model's frequent tokens). */
  randomToken: () => number;
  /**
   * A token sampled from the plain (unwatermarked) model after `context` (prompt + text so far).
   * The context is a buffer the attack keeps appending to: read it during the call, do not keep it.
   */
  sampleNext: (context: readonly number[]) => number;
  /** The prompt the text answered (context for the model-chosen tokens). */
  prompt: readonly number[];
  /** A plain text of at least the attacked text's length: the host of copy-paste. */
  host: readonly number[];
}

/** Counters an attack may fill in for the report. */
export interface AttackStats {
  /** Positions chosen for substitution that kept their token: no differing replacement in 8 tries. */
  kept: number;
}

/**
 * Applies one attack to a token text; all randomness comes from `ctx`. Semantics (s = strength, L = length):
 * see each case. The input is never modified.
 */
export function applyAttack(
  attack: Attack,
  tokens: readonly number[],
  ctx: AttackContext,
  stats?: AttackStats,
): number[] {
  const s = attack.strength;
  if (!(s >= 0 && s <= 1)) fail('E_USAGE', `attack strength must be in [0, 1]; got ${String(s)}`);
  const { rng } = ctx;
  const L = tokens.length;
  switch (attack.kind) {
    case 'none':
      return tokens.slice();

    case 'rewrite':
      return fail(
        'E_USAGE',
        'the rewrite attack goes through an endpoint: the harness applies it (EvalHooks.rewriter)',
      );

    // Kuditipudi et al. 2023 (Robust distortion-free watermarks): each token replaced with probability s.
    case 'sub': {
      const out = tokens.slice();
      for (let i = 0; i < L; i++) {
        if (rng() >= s) continue;
        const replacement = drawDifferent(tokens[i], ctx.randomToken);
        if (replacement === tokens[i] && stats) stats.kept++;
        out[i] = replacement;
      }
      return out;
    }

    // As 'sub', the replacement chosen by the plain model after the prompt and the attacked prefix.
    case 'sub-model': {
      const context = ctx.prompt.slice();
      const out: number[] = [];
      for (let i = 0; i < L; i++) {
        let token = tokens[i];
        if (rng() < s) {
          token = drawDifferent(token, () => ctx.sampleNext(context));
          if (token === tokens[i] && stats) stats.kept++;
        }
        out.push(token);
        context.push(token);
      }
      return out;
    }

    // Kuditipudi et al. 2023: each token deleted independently with probability s.
    case 'del': {
      const out: number[] = [];
      for (let i = 0; i < L; i++) if (rng() >= s) out.push(tokens[i]);
      return out;
    }

    // Kuditipudi et al. 2023: after each token, with probability s, one token inserted.
    case 'ins':
    case 'ins-model': {
      const byModel = attack.kind === 'ins-model';
      const context = byModel ? ctx.prompt.slice() : [];
      const out: number[] = [];
      for (let i = 0; i < L; i++) {
        out.push(tokens[i]);
        if (byModel) context.push(tokens[i]);
        if (rng() >= s) continue;
        const inserted = byModel ? ctx.sampleNext(context) : ctx.randomToken();
        out.push(inserted);
        if (byModel) context.push(inserted);
      }
      return out;
    }

    // Kirchenbauer et al. 2023b (On the Reliability of Watermarks for LLMs): the watermarked text's first
    // round(s·L) tokens pasted as one span into a plain host text of the same length.
    case 'copypaste': {
      if (ctx.host.length < L) {
        fail('E_INPUT', `copy-paste needs a host text of at least ${L} tokens; got ${ctx.host.length}`);
      }
      const span = Math.round(s * L);
      const out = ctx.host.slice(0, L);
      const start = Math.floor(rng() * (L - span + 1));
      for (let j = 0; j < span; j++) out[start + j] = tokens[j];
      return out;
    }

    // The text cut short: the first round((1 − s)·L) tokens, at least one.
    case 'trunc':
      return L === 0 ? [] : tokens.slice(0, Math.max(1, Math.round((1 - s) * L)));

    // A model rewrite: each position resampled with probability s; a likely token may come back unchanged.
    case 'paraphrase': {
      const context = ctx.prompt.slice();
      const out: number[] = [];
      for (let i = 0; i < L; i++) {
        const token = rng() < s ? ctx.sampleNext(context) : tokens[i];
        out.push(token);
        context.push(token);
      }
      return out;
    }

    default:
      return fail('E_USAGE', `unknown attack kind ${JSON.stringify(String(attack.kind))}`);
  }
}

/** A token from `draw` that differs from `original`, or `original` after 8 tries that all equal it. */
function drawDifferent(original: number, draw: () => number): number {
  for (let t = 0; t < MAX_REPLACEMENT_TRIES; t++) {
    const token = draw();
    if (token !== original) return token;
  }
  return original;
}

/** Levenshtein distance between the texts divided by the original's length (by 1 when it is empty). */
export function editRate(original: readonly number[], attacked: readonly number[]): number {
  const n = original.length;
  const m = attacked.length;
  if (n === 0) return m;
  // Two rows of the O(n·m) table; texts here are at most a few thousand tokens.
  let prev = new Int32Array(m + 1);
  let row = new Int32Array(m + 1);
  for (let j = 0; j <= m; j++) prev[j] = j;
  for (let i = 1; i <= n; i++) {
    row[0] = i;
    const a = original[i - 1];
    for (let j = 1; j <= m; j++) {
      const substitute = prev[j - 1] + (a === attacked[j - 1] ? 0 : 1);
      row[j] = Math.min(substitute, prev[j] + 1, row[j - 1] + 1);
    }
    [prev, row] = [row, prev];
  }
  return prev[m] / n;
}
