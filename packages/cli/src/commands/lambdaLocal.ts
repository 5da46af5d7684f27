/**
 * `tributary lambda-local <pipeline.yaml> --stream <name>`: the pipeline's Lambda handler run on a
 * Kinesis stream locally, as the event source mapping would invoke it. SIGINT/SIGTERM stop it after
 * the invocations in flight (exit 130/143).
 */
import { type Command, EXIT } from '../command.js';
import { lambdaLocal as runLambdaLocal } from '../lambdaLocal.js';
import { loadPipeline, reportFailure } from '../pipeline.js';
import { STOP_SIGNALS, stopOnSignals } from '../signals.js';

/** The ranges of the event source mapping's settings that lambda-local takes as flags. */
const INTEGER_FLAGS = {
  'batch-size': { min: 1, max: 10_000 },
  'max-retries': { min: 0, max: 10_000 },
  parallelization: { min: 1, max: 10 },
} as const;

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
  usage: `lambda-local <pipeline.yaml> --stream <name> [--endpoint <url>] [--batch-size <n>]
                [--bisect] [--max-retries <n>] [--parallelization <n>]`,
  summary: 'run the Lambda handler on a Kinesis stream locally, until every shard is idle',
  options: {
    stream: { type: 'string' },
    endpoint: { type: 'string' },
    'batch-size': { type: 'string' },
    bisect: { type: 'boolean' },
    'max-retries': { type: 'string' },
    parallelization: { type: 'string' },
  },
  optionsHelp: `  --stream <name>       the Kinesis stream to read
  --endpoint <url>      the Kinesis endpoint (e.g. kinesalite's); default: AWS's, for the region
                        and credentials of the environment
  --batch-size <n>      records per invocation at most, 1 to 10000 (default 100)
  --bisect              split a failed batch in two and retry each half (BisectBatchOnFunctionError)
  --max-retries <n>     retries of a failed batch before its records go to the dead-letter output
                        (the on-failure destination), 0 to 10000 (default 3)
  --parallelization <n> batches of one shard handled at once (ParallelizationFactor), 1 to 10
                        (default 1)`,
  async run({ values, positionals }, context) {
    const file = positionals[0];
    const stream = values.stream as string | undefined;
    if (file === undefined || positionals.length > 1 || stream === undefined)
      return context.usageError('lambda-local needs a pipeline file and --stream <name>');
    const numbers = {
      batchSize: integerFlag(values, 'batch-size'),
      maxRetries: integerFlag(values, 'max-retries'),
      parallelization: integerFlag(values, 'parallelization'),
    };
    for (const n of Object.values(numbers)) if (typeof n === 'string') return context.usageError(n);
    const loaded = await loadPipeline(file, context);
    if (!loaded) return EXIT.invalid;
    const { io } = context;
    const stop = stopOnSignals(io, false);
    try {
      const { summary, failed } = await runLambdaLocal(loaded, {
        signal: stop.signal,
        stream,
        endpoint: values.endpoint as string | undefined,
        batchSize: numbers.batchSize as number | undefined,
        bisect: values.bisect === true,
        maxRetries: numbers.maxRetries as number | undefined,
        parallelization: numbers.parallelization as number | undefined,
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
