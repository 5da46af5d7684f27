// Which modules each package entry loads, in a fresh Node process on the built packages: the
// dependency arrows of the architecture (runtimes → state/sinks → core; core imports no SDK, no
// Redis client; only the CLI bundles with esbuild) checked on what is really loaded, not on
// package.json. A module is attributed to its package by its path (node_modules/<name>/, or the
// workspace folder of a Tributary package).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');
const preload = join(import.meta.dirname, 'support', 'loadedModules.mjs');

/** The workspace packages by folder: packages/<folder> → its name. */
const workspace = new Map(
  readdirSync(join(root, 'packages'))
    .filter((d) => existsSync(join(root, 'packages', d, 'package.json')))
    .map((d) => [
      d,
      (JSON.parse(readFileSync(join(root, 'packages', d, 'package.json'), 'utf8')) as { name: string }).name,
    ]),
);

/** The package a loaded module belongs to (undefined for Node's own and for inline modules). */
function packageOf(url: string): string | undefined {
  if (!url.startsWith('file:')) return undefined;
  const path = fileURLToPath(url);
  const nodeModules = path.lastIndexOf(`${sep}node_modules${sep}`);
  if (nodeModules >= 0) {
    const [scope, name] = path.slice(nodeModules + '/node_modules/'.length).split(sep);
    return scope?.startsWith('@') ? `${scope}/${name}` : scope;
  }
  const inPackages = join(root, 'packages') + sep;
  if (path.startsWith(inPackages)) return workspace.get(path.slice(inPackages.length).split(sep)[0] as string);
  return undefined;
}

/** The packages `entry` loads when a fresh process imports it (the entry's own package included). */
function packagesLoadedBy(entry: string): Set<string> {
  const script = `await import(${JSON.stringify(entry)}); process.stdout.write(JSON.stringify(await globalThis[Symbol.for('tributary.loadedModules')]()));`;
  const r = spawnSync(process.execPath, ['--import', preload, '--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(r.status, r.stderr).toBe(0);
  const urls = JSON.parse(r.stdout) as string[];
  return new Set(urls.map(packageOf).filter((p): p is string => p !== undefined));
}

/** Each entry, the packages it must not load, and what that means. */
interface Rule {
  entry: string;
  forbidden: (pkg: string) => boolean;
  what: string;
}
const sdkOrRedis = (p: string) => p.startsWith('@aws-sdk/') || p === 'ioredis';
const RULES: Rule[] = [
  { entry: '@tributary/core', forbidden: sdkOrRedis, what: 'no AWS SDK and no ioredis' },
  { entry: '@tributary/core/runtime', forbidden: sdkOrRedis, what: 'no AWS SDK and no ioredis' },
  { entry: '@tributary/state', forbidden: (p) => p === 'esbuild', what: 'no esbuild' },
  { entry: '@tributary/sinks', forbidden: (p) => p === 'esbuild', what: 'no esbuild' },
  { entry: '@tributary/runtime-lambda', forbidden: (p) => p === 'esbuild', what: 'no esbuild' },
  {
    entry: '@tributary/runtime-node',
    forbidden: (p) => p === '@tributary/runtime-lambda' || p === 'esbuild',
    what: 'neither @tributary/runtime-lambda nor esbuild',
  },
  ...(workspace.has('aws')
    ? [{ entry: '@tributary/aws', forbidden: (p: string) => p === 'esbuild', what: 'no esbuild' }]
    : []),
];

describe('the modules each package entry loads, in a fresh process', () => {
  it('the built packages are there (`pnpm build`)', () => {
    for (const folder of workspace.keys()) expect(existsSync(join(root, 'packages', folder, 'dist'))).toBe(true);
  });

  it.each(RULES.map((r) => [r.entry, r.what, r] as const))('%s loads %s', (entry, _, { forbidden }) => {
    const loaded = packagesLoadedBy(entry);
    // The entry itself was seen: the record is not empty for want of looking.
    expect(loaded).toContain(entry.split('/').slice(0, 2).join('/'));
    expect([...loaded].filter(forbidden)).toEqual([]);
  });

  it('sees what an entry loads through CommonJS too: @tributary/state loads the AWS SDK and ioredis', () => {
    const loaded = [...packagesLoadedBy('@tributary/state')];
    expect(loaded).toContain('ioredis');
    expect(loaded.some((p) => p.startsWith('@aws-sdk/'))).toBe(true);
  });
});
