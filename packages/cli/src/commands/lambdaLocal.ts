/**
 * `tributary lambda-local <pipeline.yaml> --stream <name>`: the pipeline's Lambda handler run on a
 * Kinesis stream locally, as the event source mapping would invoke it. SIGINT/SIGTERM stop it after
 * the invocations in flight (exit 130/143).
 */
import { type Command, EXIT } from '../command.js';
import { lambdaLocal as runLambdaLocal } from '../lambdaLocal.js';
import { loadPipeline, reportFailure } from '../pipeline.js';
import { STOP_SIGNALS, stopOnSignals } from '../signals.js';

const number = (v: string | boolean | undefined) => (v === undefined ? undefined : Number(v));

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
  --batch-size <n>      records per invocation at most (default 100)
  --bisect              split a failed batch in two and retry each half (BisectBatchOnFunctionError)
  --max-retries <n>     retries of a failed batch before its records go to the dead-letter output
                        (the on-failure destination; default 3)
  --parallelization <n> batches of one shard handled at once (ParallelizationFactor, default 1)`,
  async run({ values, positionals }, context) {
    const file = positionals[0];
    const stream = values.stream as string | undefined;
    if (file === undefined || positionals.length > 1 || stream === undefined)
      return context.usageError('lambda-local needs a pipeline file and --stream <name>');
    const loaded = await loadPipeline(file, context);
    if (!loaded) return EXIT.invalid;
    const { io } = context;
    const stop = stopOnSignals(io, false);
    try {
      const { summary, failed } = await runLambdaLocal(loaded, {
        signal: stop.signal,
        stream,
        endpoint: values.endpoint as string | undefined,
        batchSize: number(values['batch-size']),
        bisect: values.bisect === true,
        maxRetries: number(values['max-retries']),
        parallelization: number(values.parallelization),
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
