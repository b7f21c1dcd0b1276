import { type Job, scoreBatch } from './multikey';

/** The multi-key pool's worker: score sums of one job's keys over the shared tape. */
export default function scoreJob(job: Job): number[] {
  return scoreBatch(job);
}
