import { type AccountJob, scoreAccountJob } from './attribution';

/** The attribution pool's worker: the layer's green counts of one share of the candidate accounts. */
export default function scoreAccounts(job: AccountJob): Float64Array {
  return scoreAccountJob(job);
}
