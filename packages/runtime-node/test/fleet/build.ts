// Builds the `tributary` bin from the sources (packages/cli/src/bin.ts and every @tributary
// package's `source` export) into one ES module, with @tributary/runtime-node replaced by
// runtimeShim.ts (the lease settings of the tests). Built once per test file, so the worker
// processes run the code under test, not a dist that may be stale.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..', '..', '..', '..');

export async function buildFleetBin(): Promise<string> {
  const outDir = join(root, 'node_modules', '.cache', 'tributary-fleet');
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, `bin-${process.pid}.mjs`);
  await build({
    entryPoints: [join(root, 'packages', 'cli', 'src', 'bin.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['source'],
    // Loaded only by commands the tests do not run (synth bundles with esbuild).
    external: ['esbuild'],
    logLevel: 'error',
    banner: {
      js: "import { createRequire as __fleetRequire } from 'node:module'; const require = __fleetRequire(import.meta.url);",
    },
    plugins: [
      {
        name: 'runtime-shim',
        setup(b) {
          b.onResolve({ filter: /^@tributary\/runtime-node$/ }, () => ({
            path: join(import.meta.dirname, 'runtimeShim.ts'),
          }));
        },
      },
    ],
  });
  return outfile;
}
