/**
 * Entry generation for `tributary synth`: the handler module esbuild bundles — the pipeline's spec
 * inline, the modules of the components it uses (each registers itself; nothing else is
 * registered in the bundle), the modules its `fn:` refs name — and the files it reads at start,
 * copied beside the bundle. The component module tables are here, in one place.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import type { Pipeline, PipelineSpec } from '@tributary/core';
import { COMPONENT_MODULES, kindOf } from '@tributary/core/spi';

/** The modules registering the sink, store and lookup kinds of the other packages (core's: COMPONENT_MODULES). */
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
}

/**
 * The modules registering the components a spec uses: core's own (by path, from
 * COMPONENT_MODULES) and the sinks, stores and lookups of the other packages. Nothing else is
 * registered in the bundle, so it holds only what the pipeline can run. Also what decides the
 * optional modules it needs (see OPTIONAL_MODULES in bundle.ts).
 */
export function componentImports(spec: PipelineSpec): { imports: string[]; uses: SpecUses } {
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
export async function copyReadFiles(
  pipeline: Pipeline,
  outDir: string,
): Promise<{ spec: PipelineSpec; files: string[] }> {
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
    `const bindings = new Map([${bindings.join(', ')}]);`,
    // Validated when it was synthesised: the container skips the schema check at cold start.
    // Relative paths (the copied lookup files) are read beside the bundle, whatever the cwd.
    `export const handler = createPipelineHandler({ spec, bindings, baseDir: import.meta.dirname, file: ${JSON.stringify(pipeline.file ?? 'pipeline')} }, { validated: true });`,
    '',
  ].join('\n');
}
