/**
 * `tributary synth pipeline.yaml --runtime lambda --out dir`: a deployable function for a pipeline
 * — an esbuild bundle (ESM, target node22, minified; the pipeline and the modules its `fn:` refs
 * name are bundled in; see entry.ts and bundle.ts) and a CloudFormation template (template.ts).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Pipeline } from '@tributary/core';
import { checkLambdaWindowState } from '@tributary/runtime-lambda';
import type { Metafile } from 'esbuild';
import { bundleEntry } from './bundle.js';
import { componentImports, copyReadFiles, entrySource } from './entry.js';
import { type TemplateOptions, template } from './template.js';

export interface SynthOptions extends TemplateOptions {
  outDir: string;
  /** Bundle the AWS SDK too (default false: the Node 22 Lambda runtime provides SDK v3). */
  bundleSdk?: boolean;
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
  const templateBody = template(pipeline.spec, options);
  const templatePath = join(options.outDir, 'template.json');
  await writeFile(templatePath, `${JSON.stringify(templateBody, null, 2)}\n`);
  return {
    bundle,
    template: templatePath,
    bundleBytes: bytes,
    bundleGzipBytes: gzipSync(await readFile(bundle)).length,
    templateBody,
    files: inlined.files,
    metafile,
  };
}
