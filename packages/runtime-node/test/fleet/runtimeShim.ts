// What the fleet tests' build of the `tributary` bin imports as @tributary/runtime-node: the
// package's sources, with createWorker given the lease settings (short failoverTime) and read
// pacing of the JSON in TRIBUTARY_FLEET_WORKER_OPTIONS. The command line has no flag for them
// (a fleet in production keeps KCL's defaults); everything else is the real command.
import { createWorker as createRealWorker, type Worker, type WorkerOptions } from '../../src/worker.js';

export * from '../../src/index.js';

const extra = JSON.parse(process.env.TRIBUTARY_FLEET_WORKER_OPTIONS ?? '{}') as Partial<WorkerOptions>;

export function createWorker(pipeline: Parameters<typeof createRealWorker>[0], options: WorkerOptions = {}): Worker {
  return createRealWorker(pipeline, { ...options, ...extra, settings: { ...options.settings, ...extra.settings } });
}
