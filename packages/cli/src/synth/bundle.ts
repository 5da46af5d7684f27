/**
 * Bundling for `tributary synth`: the generated entry (see entry.ts) bundled by esbuild (ESM,
 * target node22, minified, source map linked), with plugins that leave out what a synthesised
 * function never runs — the YAML loader and validator, the modules its pipeline does not need
 * (stubs that throw, saying what needs them), the components' documentation — and load the AWS
 * SDK the Lambda runtime provides.
 */
import { readFile, realpath } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { build, type Metafile, type Plugin } from 'esbuild';
import { coreDist, moduleDirs, type SpecUses } from './entry.js';

/** Whether a window step's `state` keeps it in process memory (none, `memory`, `{ memory: {…} }`). */
const inMemory = (state: unknown) =>
  state === undefined || state === 'memory' || (typeof state === 'object' && state !== null && 'memory' in state);

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
  // Unless the pipeline's source is a DynamoDB stream, the function's event source is a Kinesis
  // stream: no DynamoDB Streams records reach it to decode (one that did would be dead-lettered,
  // saying so).
  {
    pkg: '@tributary/runtime-lambda',
    module: 'dynamoDbImage.js',
    exports: ['imageValue'],
    neededBy: 'a DynamoDB Streams event source',
    needed: (u) => u.source === 'dynamodbStream',
  },
  // The KPL encoder, which only the Kinesis sink's aggregation uses (the decoder, kpl.js, every
  // function needs).
  {
    pkg: '@tributary/core',
    module: 'kplAggregate.js',
    exports: ['aggregateUserRecords', 'userRecordSize'],
    neededBy: 'a kinesis sink with aggregate',
    needed: (u) => u.sinks.some((x) => x.kind === 'kinesis' && Boolean(x.options.aggregate)),
  },
];

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
  /** Where its relative imports resolve (by default, it has none). */
  resolveDir?: string;
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

/** The text of any of CEL's optional values (see celOptional). */
const OPTIONAL_TEXT = /optional|value\(|or\(|none\(|of\(|\?/i;

/**
 * CEL's optional values (`optional.of`, `?.`, `.orValue(…)`: cel-js's optional.js) for a bundle
 * whose expressions use none of them (the spec's text has none of their words or syntax, see
 * OPTIONAL_TEXT): the module as it is, but for the bodies of its functions and macros, each of
 * which throws instead, saying what needs it. They are registered with the same signatures (the
 * environment holds the same names and types). Undefined when the module is not as expected (it
 * is then bundled whole).
 */
async function celOptional(): Promise<Replacement | undefined> {
  const lib = dirname(await realpath(createRequire(join(coreDist(), 'index.js')).resolve('@marcbachmann/cel-js')));
  const file = join(lib, 'optional.js');
  const text = await readFile(file, 'utf8');
  const start = text.indexOf('\nexport function register(registry) {\n');
  const errors = "import {evaluationError} from './errors.js'\n";
  if (start < 0 || !text.startsWith(errors) || !text.trimEnd().endsWith('\n}')) return undefined;
  const neededBy = 'an expression using optional values (optional.of, ?., orValue)';
  const signatures = [
    'optional.hasValue(): bool',
    'optional<A>.value(): A',
    'OptionalNamespace.none(): optional<T>',
    'OptionalNamespace.of(A): optional<A>',
    'optional.or(ast): optional<dyn>',
    'optional.orValue(ast): dyn',
  ];
  const register = `
export function register(registry) {
  registry.registerType('OptionalNamespace', OptionalNamespace)
  registry.registerConstant('optional', 'OptionalNamespace', registry.enableOptionalTypes ? optionalNamespace : undefined)
  for (const sig of ${JSON.stringify(signatures)}) registry.registerFunctionOverload(sig, () => leftOut(sig, ${JSON.stringify(neededBy)}), {async: false})
}
`;
  const contents = [`import { leftOut } from ${JSON.stringify(LEFT_OUT)};`, text.slice(0, start), register].join('\n');
  return { files: [file], contents, resolveDir: lib };
}

/** A call of one of CEL's macros (see celMacros). */
const MACRO_TEXT = /\b(has|all|exists|exists_one|map|filter|bind)\s*\(/;

/**
 * CEL's macros (`has`, `all`, `exists`, `exists_one`, `map`, `filter`, `cel.bind`: cel-js's
 * macros.js) for a bundle whose spec calls none of them (see MACRO_TEXT): registered with the same
 * signatures (and the `cel` namespace), each expanding to an error that names what needs it.
 * Undefined when the module is not as expected (it is then bundled whole).
 */
async function celMacros(): Promise<Replacement | undefined> {
  const lib = dirname(await realpath(createRequire(join(coreDist(), 'index.js')).resolve('@marcbachmann/cel-js')));
  const file = join(lib, 'macros.js');
  const text = await readFile(file, 'utf8');
  const signatures = [
    'has(ast): bool',
    'list.all(ast, ast): bool',
    'list.exists(ast, ast): bool',
    'list.exists_one(ast, ast): bool',
    'list.map(ast, ast): list<dyn>',
    'list.map(ast, ast, ast): list<dyn>',
    'list.filter(ast, ast): list<dyn>',
  ];
  const bind = 'CelNamespace.bind(ast, dyn, ast): dyn';
  const expected =
    text.split('functionOverload(').length - 1 === signatures.length + 1 &&
    [...signatures, bind].every((sig) => text.includes(`'${sig}'`)) &&
    text.includes("registry.registerConstant('cel', 'CelNamespace', celNamespace)");
  if (!expected) return undefined;
  const neededBy = 'an expression using a CEL macro (has, all, exists, exists_one, map, filter, cel.bind)';
  const contents = `import { leftOut } from ${JSON.stringify(LEFT_OUT)};
export function registerMacros(registry) {
  const overload = (sig) => registry.registerFunctionOverload(sig, () => leftOut(sig, ${JSON.stringify(neededBy)}))
  for (const sig of ${JSON.stringify(signatures)}) overload(sig)
  class CelNamespace {}
  registry.registerType('CelNamespace', CelNamespace)
  registry.registerConstant('cel', 'CelNamespace', new CelNamespace())
  overload(${JSON.stringify(bind)})
}
`;
  return { files: [file], contents };
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
        resolveDir: byFile.get(args.path)?.resolveDir,
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
 * `@tributary/core/spi` (components import it) is resolved from the same folder, so the bundle
 * holds one copy of core's modules (one registry).
 */
function coreRuntime(): Plugin {
  return {
    name: 'tributary-core-runtime',
    setup(b) {
      // Resolved as esbuild resolves any path (a `.js` import may name a `.ts` source file).
      b.onResolve({ filter: /^@tributary\/core(\/spi)?$/ }, (args) =>
        b.resolve(join(coreDist(), args.path === '@tributary/core' ? 'runtime.js' : 'spi.js'), {
          kind: args.kind,
          resolveDir: args.resolveDir,
        }),
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

/** What `bundleEntry` wrote: the bundle's size and esbuild's account of it. */
export interface Bundle {
  /** Bytes of the bundle's code. */
  bytes: number;
  /** esbuild's account of the bundle: every module in it and its bytes (see esbuild's analyzeMetafile). */
  metafile: Metafile;
}

/**
 * Bundles the entry's source into `outfile` (and its source map beside it). `resolveDir` is where
 * the entry's relative imports (the `fn:` modules) resolve; `uses` decides the optional modules.
 */
export async function bundleEntry(
  entry: { contents: string; resolveDir: string; uses: SpecUses },
  outfile: string,
  options: { bundleSdk?: boolean } = {},
): Promise<Bundle> {
  const replacements = [
    ...OPTIONAL_MODULES.filter((m) => !m.needed(entry.uses)).map((m) =>
      throwing(
        moduleDirs(m.pkg).map((d) => join(d, m.module)),
        m.exports,
        m.neededBy,
      ),
    ),
    // File output locks, which only a file sink takes: without one no output is a file, and the
    // check that no output is the input or another output has nothing to check.
    ...(entry.uses.sinks.some((s) => s.kind === 'file')
      ? []
      : [
          {
            files: moduleDirs('@tributary/core').map((d) => join(d, 'sinks/fileLock.js')),
            contents: [
              `import { leftOut } from ${JSON.stringify(LEFT_OUT)};`,
              "const neededBy = 'a file sink';",
              "export async function checkOutputs(_input, outputs) { if (outputs.length > 0) leftOut('checkOutputs', neededBy); }",
              "export function lockOutput() { leftOut('lockOutput', neededBy); }",
              "export function makeDirectory() { leftOut('makeDirectory', neededBy); }",
            ].join('\n'),
          },
        ]),
    ...(OPTIONAL_TEXT.test(entry.uses.text) ? [] : [await celOptional()].filter((r) => r !== undefined)),
    ...(MACRO_TEXT.test(entry.uses.text) ? [] : [await celMacros()].filter((r) => r !== undefined)),
    // Unless the source is a DynamoDB stream, the function's event source is a Kinesis stream: no
    // DynamoDB stream is ever described (the handler makes its describer at start; describing
    // fails, saying so, and the handler logs it as any failed description).
    ...(entry.uses.source === 'dynamodbStream'
      ? []
      : [
          {
            files: moduleDirs('@tributary/runtime-lambda').map((d) => join(d, 'dynamoDbStreams.js')),
            contents: [
              `import { leftOut } from ${JSON.stringify(LEFT_OUT)};`,
              "export function dynamoDbStreamDescriber() { return async () => leftOut('dynamoDbStreamDescriber', 'a DynamoDB Streams event source'); }",
            ].join('\n'),
          },
        ]),
    // The spec inlined in the bundle was checked by synth, as it was validated: the handler's
    // check at cold start (and its message) is left out with the validator.
    {
      files: moduleDirs('@tributary/runtime-lambda').map((d) => join(d, 'memoryState.js')),
      contents: 'export function checkLambdaWindowState() {}',
    },
  ];
  const ownDirs = ['@tributary/core', '@tributary/sinks', '@tributary/state'].flatMap((p) =>
    moduleDirs(p).map((d) => `${d}${sep}`),
  );
  const result = await build({
    stdin: { contents: entry.contents, resolveDir: entry.resolveDir, loader: 'js' },
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    minify: true,
    sourcemap: 'linked',
    outfile,
    // `module` first: packages' ES module builds tree-shake (tslib's, whose `node` build does not).
    conditions: ['module', 'node', 'import'],
    // The pipeline's folder need not have Tributary installed: bundle this very package.
    alias: {
      // rxjs's `node` condition is CommonJS, which cannot be tree-shaken: take its ES2015 modules
      // (of the rxjs core's operators are built on).
      rxjs: join(dirname(createRequire(join(coreDist(), 'index.js')).resolve('rxjs')), '..', 'esm', 'index.js'),
    },
    // The entry's imports of Tributary's packages resolve from this package's dependencies.
    nodePaths: [join(import.meta.dirname, '..', '..', 'node_modules')],
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
  const name = basename(outfile);
  const code = result.metafile.outputs[Object.keys(result.metafile.outputs).find((k) => k.endsWith(name)) as string];
  return { bytes: code?.bytes ?? (await readFile(outfile)).length, metafile: result.metafile };
}
