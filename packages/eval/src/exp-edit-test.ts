import { labKeys } from '@tracemark/lab';
import { expEditTest } from '@tracemark/verifier';
import { canonicalJson, ExpEditKey, type ExpEditSpec, type MasterKey, SchemeKey } from '@tracemark/watermark';

/**
 * The run key of an evaluation: derived from its seed (as the lab's keys are), so that a run can be repeated
 * and a worker thread derives the very same key; only fingerprints are written out.
 */
export function evalMasterKey(seed: string): MasterKey {
  return labKeys(`eval\0${seed}`).owner;
}

/** What an EXP-edit test of the harness needs besides the text: the same on the main thread and in a worker. */
export interface ExpEditSettings {
  /** The run's seed: the run key is derived from it (labKeys), so a worker derives the very same key. */
  seed: string;
  spec: ExpEditSpec;
  nullKeys: number;
  /** The harness only decides p ≤ α: a test stops once its p must exceed α (the decision stays exact). */
  stopAbove: number;
}

/** The harness's EXP-edit statistic: the local alignment with gap cost 1.5 (docs/evaluation.md, "EXP-edit"). */
export const EXP_EDIT_LOCAL_GAP = 1.5;

/** An EXP-edit test job: a text, and the tenant of its key (null: the run key; `plain-<i>`: plain text i's own). */
export interface ExpEditJob {
  tokens: number[];
  tenant: string | null;
}

/** Keys by tenant, for one settings object (a worker serves one run). */
export class ExpEditTester {
  readonly #settings: ExpEditSettings;
  readonly #keys = new Map<string | null, ExpEditKey>();

  constructor(settings: ExpEditSettings) {
    this.#settings = settings;
  }

  key(tenant: string | null): ExpEditKey {
    let key = this.#keys.get(tenant);
    if (key === undefined) {
      const { spec, seed } = this.#settings;
      const master = evalMasterKey(seed);
      key = ExpEditKey.fromSchemeKey(spec, new SchemeKey(master, canonicalJson(spec), tenant ?? undefined));
      // Plain texts' keys are used once each (one text, every cell in a row): keep only the run key.
      if (tenant === null) this.#keys.set(tenant, key);
    }
    return key;
  }

  /** log10 of the permutation p-value (a lower bound above stopAbove, which decides nothing below it). */
  test(job: ExpEditJob): number {
    if (job.tokens.length === 0) return 0;
    const { nullKeys, stopAbove } = this.#settings;
    return expEditTest(job.tokens, this.key(job.tenant), {
      nullKeys,
      statistic: 'local',
      localGap: EXP_EDIT_LOCAL_GAP,
      stopAbove,
    }).log10PValue;
  }
}
