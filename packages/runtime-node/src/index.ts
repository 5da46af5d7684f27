/**
 * @tributary/runtime-node: the Kinesis worker runtime — a long-running Node process that runs a
 * pipeline, unchanged, on the shards of a Kinesis stream it consumes itself (shard leases,
 * checkpoints, resharding, graceful shutdown), and its observability (Prometheus metrics, the
 * /metrics, /healthz and /readyz endpoint, JSON logs, a live status line on a terminal). The
 * `tributary worker` command is in @tributary/cli.
 */
export {
  EfoShardReader,
  type EfoShardReaderOptions,
  efoSubscriptionClient,
  registerStreamConsumer,
  type StreamConsumer,
  type StreamConsumerOptions,
} from './efoReader.js';
export { StreamConsumerError } from './errors.js';
export {
  type HttpServer,
  type HttpServerOptions,
  type MetricsSource,
  type ProbeResult,
  startHttpServer,
} from './http.js';
export {
  createLogger,
  entryLog,
  LOG_LEVELS,
  type LogFields,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  type LogThreshold,
  parseLogLevel,
} from './log.js';
export { type MetricsSnapshot, noMetrics, PromWorkerMetrics, type PromWorkerMetricsOptions } from './metrics.js';
export {
  type ReadBatch,
  ReaderStopped,
  type ReadPosition,
  ShardReader,
  type ShardReaderOptions,
} from './shardReader.js';
export {
  createStatusLine,
  formatStatus,
  type StatusLine,
  type StatusLineOptions,
  type StatusSample,
} from './status.js';
export {
  checkWorkerWindowState,
  createWorker,
  type LeaseCoordination,
  type LeaseCoordinationContext,
  type ShardState,
  type ShardStatus,
  type Worker,
  type WorkerLog,
  type WorkerOptions,
  type WorkerStatus,
} from './worker.js';
