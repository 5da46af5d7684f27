/**
 * `tributary synth pipeline.yaml --runtime lambda --out dir`: a deployable function for a pipeline
 * — an esbuild bundle (ESM, target node22, minified; the pipeline and the modules its `fn:` refs
 * name are bundled in) and a CloudFormation template:
 *
 * - the Kinesis stream (or an existing one: parameter `StreamArn`),
 * - the function (code from parameters `CodeBucket`/`CodeKey`), its role and log group,
 * - the event source mapping: ReportBatchItemFailures, BisectBatchOnFunctionError, retries,
 *   maximum record age, on-failure destination (an SQS queue),
 * - the DynamoDB state table with TTL when a window keeps state in `dynamodb`,
 * - a schedule rule invoking the function every minute (ticks close idle windows),
 * - a role whose data statements name the stream, table and queue ARNs (never `"Resource": "*"`
 *   for a data action; only the CloudWatch Logs statements use the function's log group ARN).
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { COMPONENT_MODULES, kindOf, type Pipeline, type PipelineSpec } from '@tributary/core';
import { STATE_TABLE_KEYS, stateStoresOf } from '@tributary/state';
import { build, type Plugin } from 'esbuild';
import { checkLambdaWindowState } from './memoryState.js';

export interface SynthOptions {
  outDir: string;
  /** Bundle the AWS SDK too (default false: the Node 22 Lambda runtime provides SDK v3). */
  bundleSdk?: boolean;
  batchSize?: number;
  maximumRetryAttempts?: number;
  maximumRecordAgeInSeconds?: number;
  parallelizationFactor?: number;
}

export interface SynthResult {
  bundle: string;
  template: string;
  bundleBytes: number;
  bundleGzipBytes: number;
  templateBody: Record<string, unknown>;
  /** Files the pipeline reads at start (static lookup tables), copied beside the bundle. */
  files: string[];
}

const SINK_MODULES: Record<string, string> = {
  dynamodb: '@tributary/sinks/dynamodb',
  kinesis: '@tributary/sinks/kinesis',
  redis: '@tributary/sinks/redis',
  sqs: '@tributary/sinks/sqs',
  http: '@tributary/sinks/http',
  s3: '@tributary/sinks/s3',
};
const STORE_MODULES: Record<string, string> = {
  dynamodb: '@tributary/state/dynamodb',
  redis: '@tributary/state/redis',
};
const LOOKUP_MODULES: Record<string, string> = { dynamodb: '@tributary/state/dynamoDbLookup' };

/** Core's own dist folder (its component modules are imported from there by path). */
const coreDist = () => dirname(createRequire(import.meta.url).resolve('@tributary/core'));

/**
 * The modules registering the components a spec uses: core's own (by path, from
 * COMPONENT_MODULES) and the sinks, stores and lookups of the other packages. Nothing else is
 * registered in the bundle, so it holds only what the pipeline can run.
 */
function componentImports(spec: PipelineSpec): string[] {
  const out = new Set<string>();
  const core = (category: keyof typeof COMPONENT_MODULES, kind: string) => {
    const file = COMPONENT_MODULES[category][kind];
    if (file) out.add(join(coreDist(), file));
  };
  const visit = (node: unknown, parent: string | undefined) => {
    if (Array.isArray(node)) {
      // The elements of a `steps` list are steps: their kind is their one key besides `name`.
      for (const n of node) {
        if (parent === 'steps' && n !== null && typeof n === 'object') core('step', kindOf(n));
        visit(n, parent);
      }
    } else if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (parent === 'sink' || parent === 'deadLetter') {
          core('sink', k);
          if (SINK_MODULES[k]) out.add(SINK_MODULES[k] as string);
        }
        if (parent === 'state') {
          core('store', k);
          if (STORE_MODULES[k]) out.add(STORE_MODULES[k] as string);
          // Window state in a shared store: the window step's operators for it.
          if (k !== 'memory') out.add(join(coreDist(), 'windows/sharedOperators.js'));
        }
        if (parent === 'lookup') {
          core('lookup', k);
          if (LOOKUP_MODULES[k]) out.add(LOOKUP_MODULES[k] as string);
        }
        visit(v, k);
      }
    }
  };
  visit(spec.steps, 'steps');
  // The default dead-letter output is stderr; window state is in memory unless a store is named.
  visit({ deadLetter: spec.deadLetter ?? { stderr: {} } }, undefined);
  core('store', 'memory');
  return [...out];
}

/**
 * The files a pipeline reads when it starts (static lookup tables): each is copied into the
 * output beside the bundle, under `files/`, and the spec inlined in the bundle names the copy —
 * the function's package then holds everything it reads. Returns the spec to inline.
 */
async function copyReadFiles(pipeline: Pipeline, outDir: string): Promise<{ spec: PipelineSpec; files: string[] }> {
  const spec = structuredClone(pipeline.spec);
  const files: string[] = [];
  const copies = new Map<string, string>();
  const visit = async (node: unknown, parent: string | undefined): Promise<void> => {
    if (Array.isArray(node)) for (const x of node) await visit(x, parent);
    else if (node !== null && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      const table = parent === 'lookup' ? (o.static as { path?: unknown } | undefined) : undefined;
      if (table && typeof table.path === 'string') {
        const source = resolve(pipeline.baseDir, table.path);
        let copy = copies.get(source);
        if (copy === undefined) {
          copy = `files/${copies.size}-${basename(source)}`;
          await mkdir(join(outDir, 'files'), { recursive: true });
          await copyFile(source, join(outDir, copy));
          copies.set(source, copy);
          files.push(join(outDir, copy));
        }
        table.path = copy;
      }
      for (const [k, v] of Object.entries(o)) await visit(v, k);
    }
  };
  await visit(spec.steps, undefined);
  return { spec, files };
}

/** The handler module esbuild bundles: the spec inline, `fn:` modules imported statically. */
function entrySource(pipeline: Pipeline, spec: PipelineSpec, components: string[]): string {
  const modules = new Map<string, string>();
  const bindings: string[] = [];
  for (const ref of pipeline.bindings.keys()) {
    const hash = ref.lastIndexOf('#');
    const file = resolve(pipeline.baseDir, ref.slice(0, hash));
    let alias = modules.get(file);
    if (!alias) {
      alias = `m${modules.size}`;
      modules.set(file, alias);
    }
    bindings.push(`[${JSON.stringify(ref)}, ${alias}[${JSON.stringify(ref.slice(hash + 1))}]]`);
  }
  const imports = [...modules].map(([file, alias]) => `import * as ${alias} from ${JSON.stringify(file)};`);
  return [
    `import { createPipelineHandler } from ${JSON.stringify(join(dirname(createRequire(import.meta.url).resolve('@tributary/runtime-lambda/handler')), 'pipelineHandler.js'))};`,
    // Only the components the pipeline names are bundled (each registers itself).
    ...components.map((k) => `import ${JSON.stringify(k)};`),
    ...imports,
    `const spec = ${JSON.stringify(spec)};`,
    `const bindings = new Map([${bindings.join(', ')}]);`,
    // Validated when it was synthesised: the container skips the schema check at cold start.
    // Relative paths (the copied lookup files) are read beside the bundle, whatever the cwd.
    `export const handler = createPipelineHandler({ spec, bindings, baseDir: import.meta.dirname, file: ${JSON.stringify(pipeline.file ?? 'pipeline')} }, { validated: true });`,
    '',
  ].join('\n');
}

/** The CloudFormation template for a pipeline's function. */
export function template(spec: PipelineSpec, options: Omit<SynthOptions, 'outDir'> = {}): Record<string, unknown> {
  const dynamoTables = stateStoresOf(spec)
    .map((s) => s.store)
    .filter((s): s is { dynamodb: { table: string } } => 'dynamodb' in s)
    .map((s) => s.dynamodb.table);
  const tables = [...new Set(dynamoTables)];
  const streamArn = { 'Fn::If': ['CreateStream', { 'Fn::GetAtt': ['Stream', 'Arn'] }, { Ref: 'StreamArn' }] };
  const tableArn = (t: string) => ({
    'Fn::Sub': `arn:\${AWS::Partition}:dynamodb:\${AWS::Region}:\${AWS::AccountId}:table/${t}`,
  });
  const statements: Record<string, unknown>[] = [
    {
      Effect: 'Allow',
      Action: [
        'kinesis:GetRecords',
        'kinesis:GetShardIterator',
        'kinesis:DescribeStream',
        'kinesis:DescribeStreamSummary',
        'kinesis:ListShards',
        'kinesis:ListStreams',
      ],
      Resource: [streamArn],
    },
    { Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: [{ 'Fn::GetAtt': ['FailureQueue', 'Arn'] }] },
    {
      Effect: 'Allow',
      Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      Resource: [{ 'Fn::GetAtt': ['LogGroup', 'Arn'] }],
    },
  ];
  if (tables.length > 0) {
    statements.push({
      Effect: 'Allow',
      Action: [
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:BatchGetItem',
        'dynamodb:Query',
      ],
      Resource: tables.map(tableArn),
    });
  }
  const resources: Record<string, unknown> = {
    Stream: {
      Type: 'AWS::Kinesis::Stream',
      Condition: 'CreateStream',
      Properties: { StreamModeDetails: { StreamMode: 'ON_DEMAND' } },
    },
    FailureQueue: { Type: 'AWS::SQS::Queue', Properties: { MessageRetentionPeriod: 1_209_600 } },
    LogGroup: {
      Type: 'AWS::Logs::LogGroup',
      Properties: { LogGroupName: { 'Fn::Sub': `/aws/lambda/\${AWS::StackName}-${spec.name}` }, RetentionInDays: 30 },
    },
    Role: {
      Type: 'AWS::IAM::Role',
      Properties: {
        AssumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        },
        Policies: [{ PolicyName: 'pipeline', PolicyDocument: { Version: '2012-10-17', Statement: statements } }],
      },
    },
    Function: {
      Type: 'AWS::Lambda::Function',
      DependsOn: ['LogGroup'],
      Properties: {
        FunctionName: { 'Fn::Sub': `\${AWS::StackName}-${spec.name}` },
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        Architectures: ['arm64'],
        MemorySize: 1024,
        Timeout: 60,
        Role: { 'Fn::GetAtt': ['Role', 'Arn'] },
        Code: { S3Bucket: { Ref: 'CodeBucket' }, S3Key: { Ref: 'CodeKey' } },
        Environment: {
          Variables: {
            NODE_OPTIONS: '--enable-source-maps',
            // The handler applies window state per partition key when batches of a shard run at once.
            TRIBUTARY_PARALLELIZATION_FACTOR: String(options.parallelizationFactor ?? 1),
          },
        },
      },
    },
    EventSourceMapping: {
      Type: 'AWS::Lambda::EventSourceMapping',
      Properties: {
        EventSourceArn: streamArn,
        FunctionName: { Ref: 'Function' },
        StartingPosition: 'TRIM_HORIZON',
        BatchSize: options.batchSize ?? 500,
        MaximumBatchingWindowInSeconds: 1,
        BisectBatchOnFunctionError: true,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        MaximumRetryAttempts: options.maximumRetryAttempts ?? 10,
        MaximumRecordAgeInSeconds: options.maximumRecordAgeInSeconds ?? 86_400,
        ParallelizationFactor: options.parallelizationFactor ?? 1,
        DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': ['FailureQueue', 'Arn'] } } },
      },
    },
    TickRule: {
      Type: 'AWS::Events::Rule',
      Properties: {
        ScheduleExpression: 'rate(1 minute)',
        State: 'ENABLED',
        Targets: [{ Arn: { 'Fn::GetAtt': ['Function', 'Arn'] }, Id: 'tick', Input: '{"tributary":"tick"}' }],
      },
    },
    TickPermission: {
      Type: 'AWS::Lambda::Permission',
      Properties: {
        Action: 'lambda:InvokeFunction',
        FunctionName: { Ref: 'Function' },
        Principal: 'events.amazonaws.com',
        SourceArn: { 'Fn::GetAtt': ['TickRule', 'Arn'] },
      },
    },
  };
  tables.forEach((t, i) => {
    resources[`StateTable${i}`] = {
      Type: 'AWS::DynamoDB::Table',
      Properties: {
        TableName: t,
        BillingMode: 'PAY_PER_REQUEST',
        ...STATE_TABLE_KEYS,
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      },
    };
  });
  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description: `Tributary pipeline ${spec.name} on AWS Lambda`,
    Parameters: {
      StreamArn: { Type: 'String', Default: '', Description: 'an existing Kinesis stream ARN (empty: create one)' },
      CodeBucket: { Type: 'String', Description: 'S3 bucket holding the bundle (zip of index.mjs)' },
      CodeKey: { Type: 'String', Description: 'S3 key of the bundle zip' },
    },
    Conditions: { CreateStream: { 'Fn::Equals': [{ Ref: 'StreamArn' }, ''] } },
    Resources: resources,
    Outputs: {
      FunctionArn: { Value: { 'Fn::GetAtt': ['Function', 'Arn'] } },
      FailureQueueUrl: { Value: { Ref: 'FailureQueue' } },
    },
  };
}

/**
 * An esbuild plugin replacing packages a synthesised function never uses by stubs:
 * - the YAML parser (the spec is inline) and the JSON Schema validator (the spec was validated at
 *   synth, and the handler compiles with `validated: true`): a stub that throws if it is used;
 * - the JSON Schema builder (typebox): components describe their options with it when they are
 *   loaded, and only validation reads those schemas; its stub accepts any use and builds nothing;
 * - packages of components the pipeline does not use (the enrich step's cache): a throwing stub.
 * Together more than a third of the bundle, and its start-up time.
 */
function leaveOut(packages: string[], inert: string[]): Plugin {
  const pattern = (names: string[]) =>
    new RegExp(`^(${names.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(/.*)?$`);
  const throwing = pattern(packages);
  const accepting = pattern(inert);
  return {
    name: 'tributary-leave-out',
    setup(b) {
      b.onResolve({ filter: throwing }, (args) => ({ path: args.path, namespace: 'tributary-left-out' }));
      b.onResolve({ filter: accepting }, (args) => ({ path: args.path, namespace: 'tributary-inert' }));
      b.onLoad({ filter: /.*/, namespace: 'tributary-left-out' }, (args) => ({
        loader: 'js',
        contents: `module.exports = new Proxy({}, { get: (_, k) => k === '__esModule' ? false : function () { throw new Error(${JSON.stringify(`${args.path} is left out of this bundle (tributary synth)`)}); } });`,
      }));
      // Any property, call or construction yields the same inert value.
      b.onLoad({ filter: /.*/, namespace: 'tributary-inert' }, () => ({
        loader: 'js',
        contents:
          "const inert = new Proxy(function () {}, { get: (_, k) => (k === '__esModule' ? false : inert), apply: () => inert, construct: () => inert }); module.exports = inert;",
      }));
    },
  };
}

/**
 * An esbuild plugin resolving `@tributary/core` (exactly: not its sub-paths, as an alias would)
 * to its runtime entry, which registers no component: the entry imports the ones the pipeline uses.
 */
function coreRuntime(): Plugin {
  return {
    name: 'tributary-core-runtime',
    setup(b) {
      // Resolved as esbuild resolves any path (a `.js` import may name a `.ts` source file).
      b.onResolve({ filter: /^@tributary\/core$/ }, (args) =>
        b.resolve(join(coreDist(), 'runtime.js'), { kind: args.kind, resolveDir: args.resolveDir }),
      );
    },
  };
}

/**
 * An esbuild plugin loading the AWS SDK (left out of the bundle) with `require`, as the SDK's own
 * CommonJS modules load each other: an ES `import` of a CommonJS package makes Node scan its source
 * for export names and load it beside the copy the clients already required (about 15 ms of cold
 * start for two small packages here). `require` also honours Lambda's NODE_PATH, which reaches the
 * runtime's SDK.
 */
function sdkViaRequire(): Plugin {
  return {
    name: 'tributary-sdk-require',
    setup(b) {
      b.onResolve({ filter: /^@(aws-sdk|smithy)\// }, (args) =>
        args.namespace === 'tributary-sdk'
          ? { path: args.path, external: true }
          : { path: args.path, namespace: 'tributary-sdk' },
      );
      b.onLoad({ filter: /.*/, namespace: 'tributary-sdk' }, (args) => ({
        loader: 'js',
        contents: `module.exports = require(${JSON.stringify(args.path)});`,
      }));
    },
  };
}

/** Writes `index.mjs` (the bundle) and `template.json` into `outDir`. */
export async function synth(pipeline: Pipeline, options: SynthOptions): Promise<SynthResult> {
  checkLambdaWindowState(pipeline.spec, pipeline.file);
  await mkdir(options.outDir, { recursive: true });
  const bundle = join(options.outDir, 'index.mjs');
  const inlined = await copyReadFiles(pipeline, options.outDir);
  const components = componentImports(inlined.spec);
  const enrich = components.includes(join(coreDist(), COMPONENT_MODULES.step.enrich as string));
  const result = await build({
    stdin: {
      contents: entrySource(pipeline, inlined.spec, components),
      resolveDir: dirname(resolve(pipeline.file ?? join(pipeline.baseDir, 'x'))),
      loader: 'js',
    },
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    minify: true,
    sourcemap: 'linked',
    outfile: bundle,
    // `module` first: packages' ES module builds tree-shake (tslib's, whose `node` build does not).
    conditions: ['module', 'node', 'import'],
    // The pipeline's folder need not have Tributary installed: bundle this very package.
    alias: {
      // rxjs's `node` condition is CommonJS, which cannot be tree-shaken: take its ES2015 modules.
      rxjs: join(dirname(createRequire(import.meta.url).resolve('rxjs')), '..', 'esm', 'index.js'),
    },
    nodePaths: [
      join(dirname(createRequire(import.meta.url).resolve('@tributary/runtime-lambda')), '..', 'node_modules'),
    ],
    // ESM bundles of CommonJS code need a require().
    banner: {
      js: "import { createRequire as __tributaryRequire } from 'node:module'; const require = __tributaryRequire(import.meta.url);",
    },
    logLevel: 'silent',
    metafile: true,
    plugins: [
      coreRuntime(),
      leaveOut(['yaml', 'ajv', ...(enrich ? [] : ['lru-cache'])], ['typebox']),
      ...(options.bundleSdk ? [] : [sdkViaRequire()]),
    ],
  });
  const code =
    result.metafile.outputs[Object.keys(result.metafile.outputs).find((k) => k.endsWith('index.mjs')) as string];
  const { readFile } = await import('node:fs/promises');
  const bytes = await readFile(bundle);
  const templateBody = template(pipeline.spec, options);
  const templatePath = join(options.outDir, 'template.json');
  await writeFile(templatePath, `${JSON.stringify(templateBody, null, 2)}\n`);
  return {
    bundle,
    template: templatePath,
    bundleBytes: code?.bytes ?? bytes.length,
    bundleGzipBytes: gzipSync(bytes).length,
    templateBody,
    files: inlined.files,
  };
}
