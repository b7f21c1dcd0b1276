import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { fail } from './errors';
import { type MasterKey, SchemeKey } from './keys';
import { seededHash32 } from './mix';
import { type ContextHashing, ContextPrf } from './prf';
import { markBlockBits, type WindowGreenList } from './scheme';

/**
 * The account layer of tracemark's key hierarchy (docs/design.md, "Key hierarchy"). A KGW watermark with
 * `accountDelta` > 0 carries two green-list layers: the organisation layer (the scheme's own key, at its full δ,
 * shared by every output) and this one, which adds `accountDelta` to the tokens that are green for the account
 * that asked.
 *
 * The layer has its own context PRF (a key of purpose 'account-layer-prf'); an account's seed after a window is
 * that seed XOR the account's 64-bit code, a keyed HMAC of its id. A token is green when its bit of
 * `seededHash32(seed, 32 · block)` is set: KGW's green word at γ = 1/2, one hash per 32 tokens. So every account
 * has its own pseudo-random green list, independent of the organisation layer's and of every other account's
 * (different seeds of the same mixer, as KGW assumes of its hash), and an account that wrote nothing scores
 * Binomial(N, 1/2) exactly on N distinct (window, token) inputs. Scoring many accounts costs one hash per
 * (context, 32-token block, account) on a tape sorted by context, with no per-account key schedule.
 */

/** γ of the account layer: each token is green for an account with probability 1/2. */
export const ACCOUNT_LAYER_GAMMA = 0.5;
/** Longest account id, in UTF-16 code units (OpenAI's `user` field allows 256 as well). */
export const MAX_ACCOUNT_ID_LENGTH = 256;

/** Checks an account id: a non-empty string of at most 256 characters without NUL or line breaks. */
export function checkAccountId(account: unknown): asserts account is string {
  if (
    typeof account !== 'string' ||
    account.length === 0 ||
    account.length > MAX_ACCOUNT_ID_LENGTH ||
    /[\0\r\n]/.test(account)
  ) {
    fail(
      'E_KEY_FORMAT',
      `an account id must be a string of 1 to ${MAX_ACCOUNT_ID_LENGTH} characters without NUL or line breaks`,
    );
  }
}

/**
 * The account layer's secrets for one scheme and tenant: the key of its context PRF, and the key that turns an
 * account id into its code. Derived from the master key, the keyed spec and the tenant; holds no master key.
 */
export class AccountLayerKey {
  readonly prfKey: SchemeKey;
  readonly #codeKey: Uint8Array;

  constructor(master: MasterKey, keyedSpecJson: string, tenant?: string) {
    this.prfKey = new SchemeKey(master, keyedSpecJson, tenant, 'account-layer-prf');
    this.#codeKey = master.deriveBytes('account-code', `${keyedSpecJson}\0${tenant ?? ''}`, 32);
  }

  /** The account's 64-bit code, (lo, hi): the first 8 bytes of HMAC-SHA256(code key, UTF-8 id), little-endian. */
  code(account: string, out = new Uint32Array(2)): Uint32Array {
    checkAccountId(account);
    const mac = hmac(sha256, this.#codeKey, utf8ToBytes(account));
    out[0] = (mac[0] | (mac[1] << 8) | (mac[2] << 16) | (mac[3] << 24)) >>> 0;
    out[1] = (mac[4] | (mac[5] << 8) | (mac[6] << 16) | (mac[7] << 24)) >>> 0;
    return out;
  }

  /** The layer's context PRF over a vocabulary, with the organisation layer's window and hashing. */
  contextPrf(vocabSize: number, contextWidth: number, hashing: ContextHashing): ContextPrf {
    return new ContextPrf(this.prfKey, vocabSize, contextWidth, hashing);
  }
}

/**
 * The 32 green bits of token block `block` for an account with code (codeLo, codeHi) after a window whose
 * layer seed is (lo, hi): bit j is token 32 · block + j. The one definition of the layer's green list.
 */
export function accountGreenWord(
  lo: number,
  hi: number,
  codeLo: number,
  codeHi: number,
  block: number,
): number {
  return seededHash32(lo ^ codeLo, hi ^ codeHi, block << 5);
}

/** One account's layer: its green list after a window, and the bias it adds. */
export class AccountLayer implements WindowGreenList {
  readonly account: string;
  readonly delta: number;
  readonly #prf: ContextPrf;
  readonly #codeLo: number;
  readonly #codeHi: number;

  constructor(key: AccountLayerKey, prf: ContextPrf, account: string, delta: number) {
    const code = key.code(account);
    this.account = account;
    this.delta = delta;
    this.#prf = prf;
    this.#codeLo = code[0];
    this.#codeHi = code[1];
  }

  /** Whether `token` is green for this account after the window ending before `end`. */
  isGreen(sequence: ArrayLike<number>, end: number, token: number): boolean {
    this.#prf.seed(sequence, end);
    return ((this.#word(token >>> 5) >>> (token & 31)) & 1) === 1;
  }

  /** WindowGreenList.green for the window ending at the sequence's end. */
  green(sequence: ArrayLike<number>, ids: ArrayLike<number>, count: number, out: Uint8Array): number {
    this.#prf.seed(sequence, sequence.length);
    return markBlockBits((block) => this.#word(block), ids, count, out);
  }

  /** Adds `delta` to the logit of every candidate green for this account after the sequence. */
  bias(sequence: ArrayLike<number>, logits: Float32Array, ids: Int32Array | null, count: number): void {
    this.#prf.seed(sequence, sequence.length);
    const delta = this.delta;
    if (ids !== null) {
      let block = -1;
      let word = 0;
      for (let i = 0; i < count; i++) {
        const t = ids[i];
        if (t >>> 5 !== block) {
          block = t >>> 5;
          word = this.#word(block);
        }
        if ((word >>> (t & 31)) & 1) logits[i] += delta;
      }
      return;
    }
    for (let base = 0; base < count; base += 32) {
      let mask = this.#word(base >>> 5);
      if (count - base < 32) mask &= (1 << (count - base)) - 1;
      while (mask !== 0) {
        const bit = 31 - Math.clz32(mask & -mask);
        logits[base + bit] += delta;
        mask &= mask - 1;
      }
    }
  }

  #word(block: number): number {
    return accountGreenWord(this.#prf.lo, this.#prf.hi, this.#codeLo, this.#codeHi, block);
  }
}
