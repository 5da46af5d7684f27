/**
 * Entry generation for `tributary synth`: the handler module esbuild bundles — the pipeline's spec
 * inline, the modules of the components it uses (each registers itself; nothing else is
 * registered in the bundle), the modules its `fn:` refs name — and the files it reads at start,
 * copied beside the bundle. A component's module is the one its registration declares, found by
 * `walkComponents`.
 */
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError, type Pipeline, type PipelineSpec } from '@tributary/core';
import { type ComponentCategory, definitions, kindOf, walkComponents } from '@tributary/core/spi';
// The sink, store and lookup kinds of the other packages, registered in this process so that
// their registrations name their modules (the bundle imports only the modules a pipeline uses).
import '@tributary/sinks';
import '@tributary/state';
import { stateTables } from './template.js';

/** Resolves a module as this package does. */
const here = createRequire(import.meta.url);
/** Core's own dist folder (its component modules are imported from there by path). */
export const coreDist = () => dirname(here.resolve('@tributary/core'));
/** runtime-lambda's dist folder, as the bundle imports it. */
const lambdaDist = () => dirname(here.resolve('@tributary/runtime-lambda/handler'));
/** The folder of one of Tributary's packages (its entry is in `dist`, or in `src` where tests resolve sources). */
const packageRoot = (pkg: string) => dirname(dirname(here.resolve(pkg)));
/** The folders holding a package's modules as a bundle may resolve them: built (`dist`) or source (`src`). */
export const moduleDirs = (pkg: string) => ['dist', 'src'].map((d) => join(packageRoot(pkg), d));

/** What of a spec decides which optional modules its bundle carries (see OPTIONAL_MODULES in bundle.ts). */
export interface SpecUses {
  /** Its window steps' options. */
  windows: Record<string, unknown>[];
  /** Its sinks (dead-letter and late outputs too): kind and options. */
  sinks: { kind: string; options: Record<string, unknown> }[];
  /** Its JSON text (every expression is in it). */
  text: string;
  /** Its source's kind (`dynamodbStream`: the function decodes DynamoDB Streams records). */
  source: string;
}

/** The module a bundle imports to register a kind: its registration's, core's relative to core's dist. */
function moduleOf(category: ComponentCategory, kind: string): string {
  const def = definitions(category).find((d) => d.kind === kind);
  if (!def) throw new ConfigError(`no ${category} kind \`${kind}\` is registered`);
  return def.module.startsWith('.') ? join(coreDist(), def.module) : def.module;
}

/**
 * The modules registering the components a spec uses (each registration names its own). Nothing
 * else is registered in the bundle, so it holds only what the pipeline can run. The source is
 * left out: the function's records come from its event. Also what decides the optional modules
 * it needs (see OPTIONAL_MODULES in bundle.ts).
 */
export function componentImports(spec: PipelineSpec): { imports: string[]; uses: SpecUses } {
  const out = new Set<string>();
  const uses: SpecUses = { windows: [], sinks: [], text: JSON.stringify(spec), source: kindOf(spec.source) };
  // The default dead-letter output is stderr; window state is in memory unless a store is named.
  for (const c of walkComponents({ ...spec, deadLetter: spec.deadLetter ?? { stderr: {} } })) {
    if (c.category === 'source') continue;
    out.add(moduleOf(c.category, c.kind));
    if (c.category === 'step' && c.kind === 'window') uses.windows.push(c.spec as Record<string, unknown>);
    if (c.category === 'sink') {
      const options = c.spec !== null && typeof c.spec === 'object' ? (c.spec as Record<string, unknown>) : {};
      uses.sinks.push({ kind: c.kind, options });
    }
    // Window state in a shared store: the window step's operators for it.
    if (c.category === 'store' && c.kind !== 'memory') out.add(join(coreDist(), 'windows/sharedOperators.js'));
  }
  out.add(moduleOf('store', 'memory'));
  return { imports: [...out], uses };
}

/**
 * The files a pipeline reads when it starts (static lookup tables): each is copied into the
 * output beside the bundle, under `files/`, and the spec inlined in the bundle names the copy —
 * the function's package then holds everything it reads (a Redis CA file goes into the spec as
 * its text instead). Returns the spec to inline.
 */
export async function copyReadFiles(
  pipeline: Pipeline,
  outDir: string,
): Promise<{ spec: PipelineSpec; files: string[] }> {
  const spec = structuredClone(pipeline.spec);
  const files: string[] = [];
  const copies = new Map<string, string>();
  for (const c of walkComponents(spec)) {
    // A Redis store's or sink's CA file (`tls.ca`, a path) is inlined as its PEM text, which the
    // option also takes: the function's package holds no such file.
    const tls = c.kind === 'redis' ? (c.spec as { tls?: { ca?: unknown } }).tls : undefined;
    if (typeof tls?.ca === 'string' && !tls.ca.includes('-----BEGIN')) {
      const path = resolve(pipeline.baseDir, tls.ca);
      tls.ca = await readFile(path, 'utf8').catch((err: Error) => {
        throw new ConfigError(`${c.path}/tls/ca: cannot read the CA file ${path}: ${err.message}`, { cause: err });
      });
      continue;
    }
    const table = c.category === 'lookup' && c.kind === 'static' ? (c.spec as { path?: unknown }) : undefined;
    if (!table || typeof table.path !== 'string') continue;
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
  return { spec, files };
}

/** `/steps/2/window/state` → `["steps", "2", "window", "state"]` (a JSON pointer's keys). */
const pointerKeys = (pointer: string) =>
  pointer
    .split('/')
    .slice(1)
    .map((k) => k.replaceAll('~1', '/').replaceAll('~0', '~'));

/**
 * The statement that puts the state tables' deployed names into the spec before it compiles: the
 * template creates each table with a generated name and passes it in `TRIBUTARY_STATE_TABLE_<i>`;
 * unset (a local run of the bundle), each store keeps the table its pipeline file names. The
 * stack's table is in the stack's region, so a `region` the store names is dropped with it (the
 * function's own region then applies).
 */
export function stateTableNames(spec: PipelineSpec): string {
  const tables = stateTables(spec).map((t) => [t.variable, t.stores.map((s) => [...pointerKeys(s), 'dynamodb'])]);
  if (tables.length === 0) return '';
  return `for (const [v, at] of ${JSON.stringify(tables)}) { const n = process.env[v]; if (n) for (const p of at) { const o = p.reduce((o, k) => o[k], spec); o.table = n; delete o.region; } }`;
}

/** The handler module esbuild bundles: the spec inline, `fn:` modules imported statically. */
export function entrySource(pipeline: Pipeline, spec: PipelineSpec, components: string[]): string {
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
    stateTableNames(spec),
    `const bindings = new Map([${bindings.join(', ')}]);`,
    // Validated when it was synthesised: the container skips the schema check at cold start.
    // Relative paths (the copied lookup files) are read beside the bundle, whatever the cwd.
    `export const handler = createPipelineHandler({ spec, bindings, baseDir: import.meta.dirname, file: ${JSON.stringify(pipeline.file ?? 'pipeline')} }, { validated: true });`,
    '',
  ].join('\n');
}
