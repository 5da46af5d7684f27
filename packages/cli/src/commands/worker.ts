/**
 * `tributary worker <pipeline.yaml>`: the pipeline run as a long-running Kinesis consumer — one of
 * a fleet of such processes sharing the stream of its `kinesis` source through a lease table in
 * DynamoDB laid out as the Kinesis Client Library's (named after the application). It runs until
 * SIGINT/SIGTERM: the first stops it gracefully (no new leases; in-flight batches finish and are
 * checkpointed; leases are released so other workers take them at once), a second exits at once.
 *
 * While it runs it serves `/metrics` (Prometheus text), `/healthz` and `/readyz` on
 * `--metrics-port`, logs JSON lines on standard error (TRIBUTARY_LOG_LEVEL), and on a terminal
 * shows one live status line (shards held, records/s, iterator age).
 *
 * @tributary/runtime-node is imported when the command runs, so the other commands never load it.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { formatIssue, PipelineValidationError } from '@tributary/core';
import { kindOf } from '@tributary/core/spi';
import { type Command, type CommandContext, EXIT } from '../command.js';
import { loadPipeline, reportFailure } from '../pipeline.js';
import { STOP_SIGNALS, type StopSignal } from '../signals.js';

/** The port `/metrics` is served on by default (OpenTelemetry's Prometheus exporter's default). */
export const DEFAULT_METRICS_PORT = 9464;

/** The integer value of `--metrics-port`, or the message saying why it is refused. */
function portFlag(text: unknown): number | string {
  if (text === undefined) return DEFAULT_METRICS_PORT;
  const n = typeof text === 'string' && /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (n >= 0 && n <= 65_535) return n;
  return `Expected \`--metrics-port\` to be an integer from 0 to 65535, got ${String(text)}`;
}

/** An application or worker id: what KCL takes as a table name (3 to 255 of A-Z a-z 0-9 _ - .) or a lease owner. */
function nameFlag(flag: string, text: unknown, pattern: RegExp, what: string): string | undefined | { error: string } {
  if (text === undefined) return undefined;
  if (typeof text === 'string' && pattern.test(text)) return text;
  return { error: `Expected \`--${flag}\` to be ${what}, got ${JSON.stringify(text)}` };
}

const TABLE_NAME = /^[A-Za-z0-9_.-]{3,255}$/;
const WORKER_ID = /^[^\s]{1,255}$/;

/** A worker id unique to this process: host, process id and a random part (as KCL's default is host plus a UUID). */
function defaultWorkerId(): string {
  return `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
}

/** What `createWorker` returns (the part of @tributary/runtime-node's Worker this command uses). */
interface WorkerHandle {
  start(): Promise<void>;
  stop(reason?: string): Promise<void>;
  status(): { shards: { shardId: string; state: string; millisBehindLatest: number | undefined }[] };
  readonly done: Promise<void>;
}

export const worker: Command = {
  name: 'worker',
  usage: `worker <pipeline.yaml> [--app <name>] [--worker-id <id>] [--metrics-port <port>]
                [--endpoint <url>]`,
  summary:
    "run the pipeline as a long-running worker on its kinesis source's shards, sharing them with other workers of the same --app through a lease table, until SIGINT/SIGTERM",
  options: {
    app: { type: 'string' },
    'worker-id': { type: 'string' },
    'metrics-port': { type: 'string' },
    'metrics-host': { type: 'string' },
    endpoint: { type: 'string' },
  },
  optionsHelp: `  --app <name>          the application: workers of one app share the stream's shards, and its
                        lease table (in DynamoDB, laid out as the Kinesis Client Library's) has
                        this name; default the pipeline's name. A KCL application's table is
                        adopted at its checkpoints
  --worker-id <id>      this worker's id, the owner written on its leases (default host, process id
                        and a random part: unique to this process)
  --metrics-port <port> serve /metrics (Prometheus text), /healthz and /readyz on this port, 0 for
                        any free one (the port is logged) (default ${DEFAULT_METRICS_PORT})
  --metrics-host <addr> the address they are served on (default 0.0.0.0, every interface)
  --endpoint <url>      the Kinesis endpoint (e.g. kinesalite's); default: the source's endpoint,
                        else AWS_ENDPOINT_URL_KINESIS, else AWS_ENDPOINT_URL, else AWS's. The lease
                        table's: AWS_ENDPOINT_URL_DYNAMODB, else AWS_ENDPOINT_URL, else AWS's
  The stream, where a shard without a checkpoint starts (startingPosition, startingTimestamp) and
  the region are the pipeline's kinesis source's. Logs: JSON lines on standard error, from the level
  TRIBUTARY_LOG_LEVEL names (debug, info, warn, error, silent; default info). On a terminal, one
  status line shows the shards held, records/s and how far behind the stream's tip they are.
  SIGINT/SIGTERM: stop taking leases, finish and checkpoint the batches in flight, release the
  leases, exit 130/143; a second signal exits at once.`,
  async run({ values, positionals }, context) {
    const file = positionals[0];
    if (file === undefined || positionals.length > 1) return context.usageError('worker needs one pipeline file');
    const port = portFlag(values['metrics-port']);
    if (typeof port === 'string') return context.usageError(port);
    const app = nameFlag('app', values.app, TABLE_NAME, '3 to 255 letters, digits, _, - or . (a DynamoDB table name)');
    if (typeof app === 'object') return context.usageError(app.error);
    const workerIdFlag = nameFlag('worker-id', values['worker-id'], WORKER_ID, '1 to 255 characters without spaces');
    if (typeof workerIdFlag === 'object') return context.usageError(workerIdFlag.error);
    const host = (values['metrics-host'] as string | undefined) ?? '0.0.0.0';
    const endpoint = values.endpoint as string | undefined;
    if (endpoint !== undefined && !/^https?:\/\/[^\s/]+/.test(endpoint))
      return context.usageError(`Expected \`--endpoint\` to be an http:// or https:// URL, got ${endpoint}`);

    const loaded = await loadPipeline(file, context);
    if (!loaded) return EXIT.invalid;
    const kind = kindOf(loaded.spec.source);
    if (kind !== 'kinesis') {
      const at = loaded.locate?.('/source');
      context.io.err.write(
        `${formatIssue({
          file,
          ...(at ?? {}),
          path: '/source',
          message: `the worker reads Kinesis streams only (a \`kinesis\` source), not a ${kind} source; run this pipeline with \`tributary run\`${kind === 'dynamodbStream' ? ' or deploy it to Lambda (`tributary synth`)' : ''}`,
        })}\n`,
      );
      return EXIT.invalid;
    }
    const appName = app ?? loaded.spec.name;
    if (!TABLE_NAME.test(appName))
      return context.usageError(
        `the pipeline's name \`${appName}\` is not a DynamoDB table name (3 to 255 letters, digits, _, - or .): give \`--app <name>\``,
      );
    const workerId = workerIdFlag ?? defaultWorkerId();
    return runWorker(file, loaded, { app: appName, workerId, port, host, endpoint }, context);
  },
};

interface WorkerFlags {
  app: string;
  workerId: string;
  port: number;
  host: string;
  endpoint: string | undefined;
}

async function runWorker(
  file: string,
  loaded: NonNullable<Awaited<ReturnType<typeof loadPipeline>>>,
  flags: WorkerFlags,
  context: CommandContext,
): Promise<number> {
  const { io } = context;
  const runtime = await import('@tributary/runtime-node');
  const { PromWorkerMetrics, createLogger, createStatusLine, startHttpServer } = runtime;
  const createWorker = (runtime as { createWorker?: unknown }).createWorker as
    | ((pipeline: unknown, options: Record<string, unknown>) => WorkerHandle)
    | undefined;
  if (typeof createWorker !== 'function') {
    io.err.write('tributary worker: this @tributary/runtime-node has no createWorker (the worker is not built in)\n');
    return EXIT.internal;
  }
  const metrics = new PromWorkerMetrics();
  let handle: WorkerHandle | undefined;
  const label = `${loaded.spec.name} ${flags.workerId}`;
  const status = createStatusLine({
    stream: io.err,
    label,
    sample: () => {
      // The shards being read and how far behind the tip they are, from the worker; the records
      // in so far from the metrics (both agree: the worker counts them there).
      const shards = (handle?.status().shards ?? []).filter((sh) => sh.state === 'reading');
      const ages = shards.flatMap((sh) => (sh.millisBehindLatest === undefined ? [] : [sh.millisBehindLatest]));
      return {
        shards: shards.length,
        recordsIn: metrics.snapshot().recordsIn,
        ...(ages.length === 0 ? {} : { maxIteratorAgeMs: Math.max(...ages) }),
      };
    },
  });
  let logger: ReturnType<typeof createLogger>;
  try {
    logger = createLogger({ workerId: flags.workerId, stream: status.logStream });
  } catch (err) {
    return context.usageError((err as Error).message);
  }

  // Node's process warnings (a library's deprecation or support notice) become JSON log lines: printed
  // as Node prints them, they would break the JSON log and tear the status line on a terminal.
  const nodeWarningListeners = process.listeners('warning');
  process.removeAllListeners('warning');
  const onWarning = (warning: Error) => {
    const code = (warning as { code?: unknown }).code;
    logger.warn(warning.message, { warning: warning.name, ...(code === undefined ? {} : { code }) });
  };
  process.on('warning', onWarning);
  const restoreWarnings = () => {
    process.off('warning', onWarning);
    for (const listener of nodeWarningListeners) process.on('warning', listener);
  };

  /** The worker's lifecycle, as the probes report it. */
  let phase: 'starting' | 'running' | 'stopping' | 'ended' | 'failed' = 'starting';
  let failure: string | undefined;
  let server: Awaited<ReturnType<typeof startHttpServer>>;
  /**
   * `/metrics`, without the per-shard gauges (iterator age, checkpoint lag) of shards this worker
   * no longer reads: after a lease moves, its last age here would otherwise be exported for ever,
   * beside the new owner's, and a max() over the fleet would show a lag that is not there.
   */
  const exposed = {
    contentType: metrics.contentType,
    text: () => {
      for (const sh of handle?.status().shards ?? [])
        if (sh.state !== 'reading' && sh.state !== 'waiting-for-parents') metrics.forgetShard(sh.shardId);
      return metrics.text();
    },
  };
  try {
    server = await startHttpServer({
      port: flags.port,
      host: flags.host,
      metrics: exposed,
      health: () =>
        phase === 'ended' || phase === 'failed'
          ? { ok: false, detail: failure === undefined ? 'the worker has stopped' : `the worker failed: ${failure}` }
          : { ok: true, detail: phase },
      // Ready once the lease coordinator has started (the worker takes part in the lease protocol),
      // holding leases or not: a worker of a fleet larger than the stream's shard count holds
      // none, and must not hold back a rolling deploy that waits for readiness.
      ready: () => {
        if (phase !== 'running') return { ok: false, detail: phase };
        const reading = (handle?.status().shards ?? []).filter((sh) => sh.state === 'reading').length;
        const held = Math.max(metrics.snapshot().leasesHeld, reading);
        return { ok: true, detail: `${held} lease${held === 1 ? '' : 's'} held` };
      },
    });
  } catch (err) {
    restoreWarnings();
    io.err.write(`${file}: ${context.errorText(err)}\n`);
    return EXIT.failed;
  }
  logger.info('metrics endpoint listening', {
    host: server.host,
    port: server.port,
    paths: ['/metrics', '/healthz', '/readyz'],
  });

  let worker: WorkerHandle;
  try {
    worker = createWorker(loaded, {
      app: flags.app,
      workerId: flags.workerId,
      metrics,
      log: logger,
      // Over the source's endpoint and region (the worker's client options).
      ...(flags.endpoint === undefined ? {} : { kinesis: { endpoint: flags.endpoint } }),
    });
    handle = worker;
  } catch (err) {
    restoreWarnings();
    await server.close();
    reportFailure(file, 'worker', err, context);
    return EXIT.failed;
  }

  let received: StopSignal | undefined;
  const listeners = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((sig) => {
    const listener = () => {
      if (received !== undefined) {
        status.stop();
        logger.warn(`${sig} again: exiting now, without checkpointing the batches in flight or releasing leases`);
        process.exit(STOP_SIGNALS[sig]);
      }
      received = sig;
      phase = 'stopping';
      logger.info(
        `${sig}: stopping — no new leases, finishing and checkpointing the batches in flight, releasing leases (again to exit now)`,
      );
      worker.stop(sig).catch((err: unknown) => logger.error('stopping failed', { error: context.errorText(err) }));
    };
    process.on(sig, listener);
    return [sig, listener] as const;
  });

  status.start();
  try {
    logger.info('worker starting', { app: flags.app, pipeline: loaded.spec.name, file });
    await worker.start();
    if (phase === 'starting') phase = 'running';
    await worker.done;
    phase = 'ended';
    const code = received === undefined ? EXIT.ok : STOP_SIGNALS[received];
    logger.info('exiting', { status: code, ...(received === undefined ? {} : { signal: received }) });
    return code;
  } catch (err) {
    phase = 'failed';
    failure = context.errorText(err);
    logger.error('worker failed', { error: failure });
    status.stop();
    reportFailure(file, 'worker', err, context);
    // Stop what was started; leases it could not release expire after failoverTime.
    await worker.stop('failed').catch(() => {});
    return err instanceof PipelineValidationError ? EXIT.invalid : EXIT.failed;
  } finally {
    status.stop();
    for (const [sig, listener] of listeners) process.off(sig, listener);
    restoreWarnings();
    await server.close();
  }
}
