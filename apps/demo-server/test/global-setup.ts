import { testModels } from './helpers';

/** Builds the test-profile models once (a few seconds on the first run; loaded from the cache afterwards). */
export default async function setup(): Promise<void> {
  await testModels();
}
