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
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import { COMPONENT_MODULES, kindOf, type Pipeline, type PipelineSpec } from '@tributary/core';
import { STATE_TABLE_KEYS, stateStoresOf } from '@tributary/state';
import { build, type Metafile, type Plugin } from 'esbuild';
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
  /** esbuild's account of the bundle: every module in it and its bytes (see esbuild's analyzeMetafile). */
  metafile: Metafile;
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
/** This package's dist folder, as the bundle imports it. */
const lambdaDist = () => dirname(createRequire(import.meta.url).resolve('@tributary/runtime-lambda/handler'));
/** The folder of one of Tributary's packages (its entry is in `dist`, or in `src` where tests resolve sources). */
const packageRoot = (pkg: string) => dirname(dirname(createRequire(import.meta.url).resolve(pkg)));
/** The folders holding a package's modules as a bundle may resolve them: built (`dist`) or source (`src`). */
const moduleDirs = (pkg: string) => ['dist', 'src'].map((d) => join(packageRoot(pkg), d));

/** Whether a window step's `state` keeps it in process memory (none, `memory`, `{ memory: {…} }`). */
const inMemory = (state: unknown) =>
  state === undefined || state === 'memory' || (typeof state === 'object' && state !== null && 'memory' in state);

/** What of a spec decides which optional modules its bundle carries (see OPTIONAL_MODULES). */
interface SpecUses {
  /** Its window steps' options. */
  windows: Record<string, unknown>[];
  /** Its sinks (dead-letter and late outputs too): kind and options. */
  sinks: { kind: string; options: Record<string, unknown> }[];
  /** Its JSON text (every expression is in it). */
  text: string;
}

/**
 * Modules of Tributary's packages (by package and file) that run only for some pipelines, with
 * the names they export: a bundle replaces those its pipeline does not need by stubs that throw
 * (see `replaced`). The shared-store window operators are bundled only with a shared store (see
 * componentImports).
 */
const OPTIONAL_MODULES: {
  pkg: string;
  module: string;
  exports: string[];
  /** What needs it, for the stub's message. */
  neededBy: string;
  needed(uses: SpecUses): boolean;
}[] = [
  // Core's window step imports each of its operators.
  {
    pkg: '@tributary/core',
    module: 'windows/BucketedWindows.js',
    exports: ['BucketedWindows'],
    neededBy: 'a tumbling or hopping window in memory',
    needed: (u) => u.windows.some((w) => inMemory(w.state) && (w.tumbling !== undefined || w.hopping !== undefined)),
  },
  {
    pkg: '@tributary/core',
    module: 'windows/MergingWindows.js',
    exports: ['MergingWindows'],
    neededBy: 'a session or sliding window in memory',
    needed: (u) => u.windows.some((w) => inMemory(w.state) && (w.session !== undefined || w.sliding !== undefined)),
  },
  {
    pkg: '@tributary/core',
    module: 'windows/PerShardWindows.js',
    exports: ['PerShardWindows'],
    neededBy: 'a window with keyIsPartitionKey',
    needed: (u) => u.windows.some((w) => Boolean(w.keyIsPartitionKey)),
  },
  // CEL's `matches` runs on RE2 (re2js, and a cache of compiled patterns: about 55 KB gzipped),
  // which nothing else reaches.
  {
    pkg: '@tributary/core',
    module: 'regex.js',
    exports: ['regexMatches', 'regexProblem'],
    neededBy: 'an expression using matches',
    needed: (u) => u.text.includes('matches'),
  },
  // The function's event source is the template's Kinesis stream: no DynamoDB Streams records
  // reach it to decode (one that did would be dead-lettered, saying so).
  {
    pkg: '@tributary/runtime-lambda',
    module: 'dynamoDbImage.js',
    exports: ['imageValue'],
    neededBy: 'a DynamoDB Streams event source',
    needed: () => false,
  },
  // The KPL encoder of the Kinesis sink.
  {
    pkg: '@tributary/sinks',
    module: 'kpl.js',
    exports: ['aggregate', 'hashKeyOf', 'userRecordSize'],
    neededBy: 'a kinesis sink with aggregate',
    needed: (u) => u.sinks.some((x) => x.kind === 'kinesis' && Boolean(x.options.aggregate)),
  },
];

/**
 * The modules registering the components a spec uses: core's own (by path, from
 * COMPONENT_MODULES) and the sinks, stores and lookups of the other packages. Nothing else is
 * registered in the bundle, so it holds only what the pipeline can run. Also what decides the
 * optional modules it needs (see OPTIONAL_MODULES).
 */
function componentImports(spec: PipelineSpec): { imports: string[]; uses: SpecUses } {
  const out = new Set<string>();
  const uses: SpecUses = { windows: [], sinks: [], text: JSON.stringify(spec) };
  const core = (category: keyof typeof COMPONENT_MODULES, kind: string) => {
    const file = COMPONENT_MODULES[category][kind];
    if (file) out.add(join(coreDist(), file));
  };
  const visit = (node: unknown, parent: string | undefined) => {
    if (Array.isArray(node)) {
      // The elements of a `steps` list are steps: their kind is their one key besides `name`.
      for (const n of node) {
        if (parent === 'steps' && n !== null && typeof n === 'object') {
          const kind = kindOf(n);
          core('step', kind);
          if (kind === 'window') uses.windows.push((n as { window: Record<string, unknown> }).window);
        }
        visit(n, parent);
      }
    } else if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (parent === 'sink' || parent === 'deadLetter') {
          core('sink', k);
          if (SINK_MODULES[k]) out.add(SINK_MODULES[k] as string);
          uses.sinks.push({
            kind: k,
            options: v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {},
          });
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
  return { imports: [...out], uses };
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
    `import { createPipelineHandler } from ${JSON.stringify(join(lambdaDist(), 'pipelineHandler.js'))};`,
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
 *   loaded, and only validation reads those schemas; its stub accepts any use and builds nothing.
 * Together more than a third of the bundle, and its start-up time. (lru-cache, once left out
 * without an enrich step, is not: core's expressions keep their compiled record patterns in one.)
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

/** A module of Tributary's own that a bundle replaces (see `replaced`). */
interface Replacement {
  /** Its absolute paths (built and source). */
  files: string[];
  /** What the bundle holds instead: a module exporting the same names. */
  contents: string;
}

/** The module every stub of `throwing` imports its error from. */
const LEFT_OUT = 'tributary:left-out';

/**
 * The stub of a module exporting `names` (classes or functions) for a bundle whose pipeline does
 * not need them: each throws, saying what does, if it is ever constructed or called.
 */
function throwing(files: string[], names: readonly string[], neededBy: string): Replacement {
  const stub = (name: string) =>
    `export function ${name}() { leftOut(${JSON.stringify(name)}, ${JSON.stringify(neededBy)}); }`;
  return { files, contents: [`import { leftOut } from ${JSON.stringify(LEFT_OUT)};`, ...names.map(stub)].join('\n') };
}

/**
 * An esbuild plugin replacing modules of Tributary's own packages by the given contents. A module
 * importing a name the replacement does not export fails the build, not the function.
 */
function replaced(modules: readonly Replacement[]): Plugin {
  const byFile = new Map(modules.flatMap((m) => m.files.map((f) => [f, m] as const)));
  const names = [...new Set([...byFile.keys()].map((f) => basename(f).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))];
  return {
    name: 'tributary-replaced',
    setup(b) {
      if (modules.length === 0) return;
      b.onResolve({ filter: new RegExp(`(^|/)(${names.join('|')})$`) }, (args) => {
        const file = resolve(args.resolveDir, args.path);
        return byFile.has(file) ? { path: file, namespace: 'tributary-replaced' } : undefined;
      });
      b.onResolve({ filter: new RegExp(`^${LEFT_OUT}$`) }, () => ({ path: LEFT_OUT, namespace: 'tributary-replaced' }));
      b.onLoad({ filter: /.*/, namespace: 'tributary-replaced' }, (args) => ({
        loader: 'js',
        contents:
          args.path === LEFT_OUT
            ? 'export function leftOut(name, neededBy) { throw new Error(name + " is left out of this bundle (tributary synth): only " + neededBy + " needs it"); }'
            : (byFile.get(args.path) as Replacement).contents,
      }));
    },
  };
}

/**
 * The documentation in a module's text: the string literals of `description:` and `[X_EXPECTED]:`
 * properties (what the docs and the validator's messages say of a schema), and those passed to
 * core's schema helpers `Expression(…)` and `DurationSchema(…)` (descriptions too). Each is
 * replaced by an empty string padded with spaces to its length: lines and columns are unchanged,
 * so the module's source map still holds.
 */
function blankDocs(text: string): string {
  return text.replace(
    /(\bdescription:\s*|\[X_EXPECTED\]:\s*|\b(?:Expression|DurationSchema)\(\s*)('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")/g,
    (_, before: string, literal: string) => `${before}''${' '.repeat(literal.length - 2)}`,
  );
}

/**
 * An esbuild plugin blanking the documentation in Tributary's own modules (under `dirs`): the
 * description of each component and of each of its options (see blankDocs). Only the docs
 * generator and the validator read them (the schema builder is inert in the bundle), and neither
 * runs in a synthesised function; the pipeline's own spec (inline in the entry) is not touched.
 * About 1.5 KB gzipped.
 */
function withoutDocs(dirs: string[]): Plugin {
  return {
    name: 'tributary-without-docs',
    setup(b) {
      // Their built modules, or their TypeScript sources where those are what resolves (tests).
      b.onLoad({ filter: /\.[jt]s$/ }, async (args) => {
        if (args.namespace !== 'file' || !dirs.some((d) => args.path.startsWith(d))) return undefined;
        const loader = args.path.endsWith('.ts') ? 'ts' : 'js';
        return { loader, contents: blankDocs(await readFile(args.path, 'utf8')) };
      });
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
  const { imports: components, uses } = componentImports(inlined.spec);
  const replacements = [
    ...OPTIONAL_MODULES.filter((m) => !m.needed(uses)).map((m) =>
      throwing(
        moduleDirs(m.pkg).map((d) => join(d, m.module)),
        m.exports,
        m.neededBy,
      ),
    ),
    // The spec inlined in the bundle was checked above, as it was validated: the handler's check
    // at cold start (and its message) is left out with the validator.
    {
      files: moduleDirs('@tributary/runtime-lambda').map((d) => join(d, 'memoryState.js')),
      contents: 'export function checkLambdaWindowState() {}',
    },
  ];
  const ownDirs = ['@tributary/core', '@tributary/sinks', '@tributary/state'].flatMap((p) =>
    moduleDirs(p).map((d) => `${d}${sep}`),
  );
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
      leaveOut(['yaml', 'ajv'], ['typebox']),
      replaced(replacements),
      withoutDocs(ownDirs),
      ...(options.bundleSdk ? [] : [sdkViaRequire()]),
    ],
  });
  const code =
    result.metafile.outputs[Object.keys(result.metafile.outputs).find((k) => k.endsWith('index.mjs')) as string];
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
    metafile: result.metafile,
  };
}
