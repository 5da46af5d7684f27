/**
 * `tributary synth pipeline.yaml --runtime lambda --out dir`: a deployable function for a pipeline
 * — an esbuild bundle (ESM, target node22, minified; the pipeline and the modules its `fn:` refs
 * name are bundled in; see entry.ts and bundle.ts) and a CloudFormation template (template.ts);
 * with `zip`, the function's package as `function.zip`, which the template names as its code.
 */
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Pipeline } from '@tributary/core';
import { checkLambdaWindowState } from '@tributary/runtime-lambda';
import type { Metafile } from 'esbuild';
import { type Zippable, zipSync } from 'fflate';
import { bundleEntry } from './bundle.js';
import { componentImports, copyReadFiles, entrySource } from './entry.js';
import { FUNCTION_ZIP, template } from './template.js';

export interface SynthOptions {
  outDir: string;
  /** Bundle the AWS SDK too (default false: the Node 22 Lambda runtime provides SDK v3). */
  bundleSdk?: boolean;
  /**
   * Also write `function.zip` (the bundle, its source map and the files it reads), named as the
   * function's code in the template, for `aws cloudformation package` to upload (default false:
   * the template takes parameters CodeBucket/CodeKey).
   */
  zip?: boolean;
}

export interface SynthResult {
  bundle: string;
  template: string;
  bundleBytes: number;
  bundleGzipBytes: number;
  templateBody: Record<string, unknown>;
  /** Files the pipeline reads at start (static lookup tables), copied beside the bundle. */
  files: string[];
  /** `function.zip`, with `zip`. */
  zip?: string;
  /** esbuild's account of the bundle: every module in it and its bytes (see esbuild's analyzeMetafile). */
  metafile: Metafile;
}

/** Writes `index.mjs` (the bundle), the files it reads and `template.json` into `outDir`. */
export async function synth(pipeline: Pipeline, options: SynthOptions): Promise<SynthResult> {
  checkLambdaWindowState(pipeline);
  await mkdir(options.outDir, { recursive: true });
  const bundle = join(options.outDir, 'index.mjs');
  const inlined = await copyReadFiles(pipeline, options.outDir);
  const { imports: components, uses } = componentImports(inlined.spec);
  const { bytes, metafile } = await bundleEntry(
    {
      contents: entrySource(pipeline, inlined.spec, components),
      resolveDir: dirname(resolve(pipeline.file ?? join(pipeline.baseDir, 'x'))),
      uses,
    },
    bundle,
    { bundleSdk: options.bundleSdk },
  );
  const templateBody = template(pipeline.spec, { code: options.zip ? 'zip' : 's3' });
  const templatePath = join(options.outDir, 'template.json');
  await writeFile(templatePath, `${JSON.stringify(templateBody, null, 2)}\n`);
  const zip = options.zip ? await writeZip(options.outDir, [bundle, `${bundle}.map`, ...inlined.files]) : undefined;
  return {
    bundle,
    template: templatePath,
    bundleBytes: bytes,
    bundleGzipBytes: gzipSync(await readFile(bundle)).length,
    templateBody,
    files: inlined.files,
    ...(zip ? { zip } : {}),
    metafile,
  };
}

/** Files stored in the zip: 0644 regular files (Lambda needs them world-readable), a fixed time. */
const ZIP_ENTRY = { os: 3, attrs: (0o100644 << 16) >>> 0, mtime: new Date('2000-01-01T00:00:00Z') } as const;

/**
 * Zips those of `files` that exist into `function.zip` in `outDir`, each at its path below
 * `outDir`. The same files give the same bytes (no time of day in it), so a package step that
 * names uploads by their hash uploads unchanged code once.
 */
async function writeZip(outDir: string, files: string[]): Promise<string> {
  const entries: Zippable = {};
  for (const f of files) {
    const exists = await access(f).then(
      () => true,
      () => false,
    );
    if (exists) entries[relative(outDir, f).split(sep).join('/')] = [await readFile(f), ZIP_ENTRY];
  }
  const out = join(outDir, FUNCTION_ZIP);
  await writeFile(out, zipSync(entries, { level: 9 }));
  return out;
}
