/**
 * `tributary lambda-local <pipeline.yaml> [--stream <name>]`: the pipeline's Lambda handler run on
 * the Kinesis stream of its `kinesis` source (or `--stream`) locally, as the event source mapping
 * would invoke it, with the source's mapping settings and the template's defaults; the flags
 * override them. It ends when every shard is drained, or with `--follow` at SIGINT/SIGTERM. A
 * signal stops it after the invocations in flight (exit 130/143).
 */
import { formatIssue } from '@tributary/core';
import { kindOf } from '@tributary/core/spi';
import { type Command, EXIT } from '../command.js';
import { MAPPING_DEFAULTS } from '../eventSourceMapping.js';
import { lambdaLocal as runLambdaLocal, type StartingPosition } from '../lambdaLocal.js';
import { loadPipeline, reportFailure } from '../pipeline.js';
import { STOP_SIGNALS, stopOnSignals } from '../signals.js';

/** The ranges of the event source mapping's settings that lambda-local takes as flags. */
const INTEGER_FLAGS = {
  'batch-size': { min: 1, max: 10_000 },
  'max-retries': { min: 0, max: 10_000 },
  parallelization: { min: 1, max: 10 },
} as const;

/** `--from`'s values, as the mapping's StartingPosition. */
const FROM: Record<string, StartingPosition> = {
  'trim-horizon': 'TRIM_HORIZON',
  latest: 'LATEST',
  'at-timestamp': 'AT_TIMESTAMP',
};

/** An ISO 8601 date and time with its offset (as the source's `startingTimestamp`). */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Milliseconds since the epoch of an ISO 8601 time that exists, else NaN: `Date.parse` rolls
 * 2026-02-30 over to March 2 and 24:00 to the next day, so the time is read back in its own
 * offset and must give the same date, hour, minute and second.
 */
function isoTimeMs(text: string): number {
  const m = ISO_TIME.exec(text);
  const ms = m ? Date.parse(text) : Number.NaN;
  if (!m || !Number.isFinite(ms)) return Number.NaN;
  const offset = /([+-])(\d{2}):(\d{2})$/.exec(text);
  const offsetMs = offset ? (offset[1] === '-' ? -1 : 1) * (Number(offset[2]) * 60 + Number(offset[3])) * 60_000 : 0;
  const local = new Date(ms + offsetMs).toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ in the text's offset
  const seconds = m[1] === undefined ? '' : text.slice(16, 19);
  return local.slice(0, 16) === text.slice(0, 16) && local.slice(16, 16 + seconds.length) === seconds ? ms : Number.NaN;
}

/**
 * The integer value of flag `name`, undefined when it is not given, or the message saying why
 * it is refused.
 */
function integerFlag(values: Record<string, unknown>, name: keyof typeof INTEGER_FLAGS): number | undefined | string {
  const text = values[name];
  if (text === undefined) return undefined;
  const { min, max } = INTEGER_FLAGS[name];
  const n = typeof text === 'string' && /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (n >= min && n <= max) return n;
  return `Expected \`--${name}\` to be an integer from ${min} to ${max}, got ${String(text)}`;
}

export const lambdaLocal: Command = {
  name: 'lambda-local',
  usage: `lambda-local <pipeline.yaml> [--stream <name>] [--endpoint <url>] [--batch-size <n>]
                [--bisect | --no-bisect] [--max-retries <n>] [--parallelization <n>]
                [--from trim-horizon|latest|at-timestamp [--timestamp <ISO 8601>]] [--follow]`,
  summary: 'run the Lambda handler on a Kinesis stream locally, until every shard is drained (or --follow)',
  options: {
    stream: { type: 'string' },
    endpoint: { type: 'string' },
    'batch-size': { type: 'string' },
    bisect: { type: 'boolean' },
    'no-bisect': { type: 'boolean' },
    'max-retries': { type: 'string' },
    parallelization: { type: 'string' },
    from: { type: 'string' },
    timestamp: { type: 'string' },
    follow: { type: 'boolean' },
  },
  optionsHelp: `  --stream <name>       the Kinesis stream to read (default: the pipeline's kinesis source's;
                        needed when the source is a file)
  --endpoint <url>      the Kinesis endpoint (e.g. kinesalite's); default: the source's endpoint,
                        else AWS_ENDPOINT_URL_KINESIS, else AWS_ENDPOINT_URL, else AWS's for the
                        region and credentials of the environment
  The mapping's settings, over the source's (defaults: the template's):
  --batch-size <n>      records per invocation at most, 1 to 10000 (default ${MAPPING_DEFAULTS.kinesis.batchSize})
  --bisect, --no-bisect split a failed batch in two and retry each half, or not
                        (BisectBatchOnFunctionError; default on)
  --max-retries <n>     retries of a failed batch before its records go to the dead-letter output
                        (the on-failure destination), 0 to 10000 (default ${MAPPING_DEFAULTS.maximumRetryAttempts})
  --parallelization <n> batches of one shard handled at once (ParallelizationFactor), 1 to 10
                        (default ${MAPPING_DEFAULTS.parallelizationFactor})
  --from <position>     where each shard starts: trim-horizon (the oldest record), latest (records
                        put after the start), at-timestamp (records that arrived at or after
                        --timestamp) (StartingPosition; default the source's, else trim-horizon)
  --timestamp <time>    with --from at-timestamp: an ISO 8601 time, e.g. 2026-12-02T14:00:00Z
  --follow              keep polling when every shard is drained, until SIGINT/SIGTERM`,
  async run({ values, positionals }, context) {
    const file = positionals[0];
    const stream = values.stream as string | undefined;
    if (file === undefined || positionals.length > 1) return context.usageError('lambda-local needs a pipeline file');
    const numbers = {
      batchSize: integerFlag(values, 'batch-size'),
      maxRetries: integerFlag(values, 'max-retries'),
      parallelization: integerFlag(values, 'parallelization'),
    };
    for (const n of Object.values(numbers)) if (typeof n === 'string') return context.usageError(n);
    if (values.bisect === true && values['no-bisect'] === true)
      return context.usageError('give `--bisect` or `--no-bisect`, not both');
    const fromText = values.from as string | undefined;
    const from = fromText === undefined ? undefined : FROM[fromText];
    if (fromText !== undefined && from === undefined)
      return context.usageError(`Expected \`--from\` to be trim-horizon, latest or at-timestamp, got ${fromText}`);
    const timestampText = values.timestamp as string | undefined;
    let timestamp: number | undefined;
    if (timestampText !== undefined) {
      timestamp = isoTimeMs(timestampText);
      if (!Number.isFinite(timestamp))
        return context.usageError(
          `Expected \`--timestamp\` to be an ISO 8601 time that exists, such as 2026-12-02T14:00:00Z, got ${timestampText}`,
        );
      if (from !== 'AT_TIMESTAMP') return context.usageError('`--timestamp` goes with `--from at-timestamp`');
    }
    const loaded = await loadPipeline(file, context);
    if (!loaded) return EXIT.invalid;
    const kind = kindOf(loaded.spec.source);
    if (kind === 'dynamodbStream') {
      // The simulator polls Kinesis only (and no emulator here has DynamoDB Streams).
      const at = loaded.locate?.('/source');
      context.io.err.write(
        `${formatIssue({
          file,
          ...(at ?? {}),
          path: '/source',
          message:
            'lambda-local reads Kinesis streams only: a dynamodbStream source is not simulated; run the pipeline on change records in a file with `tributary run --input <file>`',
        })}\n`,
      );
      return EXIT.invalid;
    }
    if (kind !== 'kinesis' && stream === undefined)
      return context.usageError(
        `lambda-local needs --stream <name>: the source of ${file} is a ${kind}, not a kinesis stream`,
      );
    const source = (loaded.spec.source as { kinesis?: { startingTimestamp?: string } }).kinesis;
    if (from === 'AT_TIMESTAMP' && timestamp === undefined && source?.startingTimestamp === undefined)
      return context.usageError('`--from at-timestamp` needs `--timestamp <ISO 8601 time>`');
    const { io } = context;
    if ((source as { consumer?: string } | undefined)?.consumer === 'efo')
      io.err.write(
        `${file}: note: the source's \`consumer: efo\` is read with GetRecords here (the deployed mapping reads through its registered consumer, SubscribeToShard)\n`,
      );
    const stop = stopOnSignals(io, false);
    try {
      const { summary, failed } = await runLambdaLocal(loaded, {
        signal: stop.signal,
        ...(stream === undefined ? {} : { stream }),
        ...(values.endpoint === undefined ? {} : { endpoint: values.endpoint as string }),
        ...(numbers.batchSize === undefined ? {} : { batchSize: numbers.batchSize as number }),
        ...(values.bisect === true ? { bisect: true } : values['no-bisect'] === true ? { bisect: false } : {}),
        ...(numbers.maxRetries === undefined ? {} : { maxRetries: numbers.maxRetries as number }),
        ...(numbers.parallelization === undefined ? {} : { parallelization: numbers.parallelization as number }),
        ...(from === undefined ? {} : { from }),
        ...(timestamp === undefined ? {} : { timestamp }),
        follow: values.follow === true,
        onDrained: (recordsIn) =>
          io.err.write(
            `${loaded.spec.name}: every shard drained, ${recordsIn} records in so far; following until SIGINT/SIGTERM\n`,
          ),
        log: (line) => io.err.write(`${line}\n`),
      });
      io.err.write(`${summary}\n`);
      if (failed > 0) return EXIT.failed;
      const sig = stop.received();
      return sig === undefined ? EXIT.ok : STOP_SIGNALS[sig];
    } catch (err) {
      reportFailure(file, 'lambda-local', err, context);
      return EXIT.failed;
    } finally {
      stop.dispose();
    }
  },
};
