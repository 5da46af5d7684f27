// A package that can be published must not depend on one that cannot: `pnpm pack` turns
// `workspace:*` into a version, and a private package is never on the registry, so
// `npm install @tributary/sinks` (or state, runtime-lambda, cli) would fail on a private one.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const packagesDir = join(import.meta.dirname, '..', '..');
interface Manifest {
  name: string;
  private?: boolean;
  files?: string[];
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}
const manifests: Manifest[] = readdirSync(packagesDir).map(
  (d) => JSON.parse(readFileSync(join(packagesDir, d, 'package.json'), 'utf8')) as Manifest,
);
const byName = new Map(manifests.map((m) => [m.name, m]));
const published = manifests.filter((m) => !m.private);
const dependenciesOf = (m: Manifest): [string, string][] =>
  Object.entries({ ...m.dependencies, ...m.peerDependencies });

describe('published packages', () => {
  it('depend on no private workspace package', () => {
    const offending = published.flatMap((m) =>
      dependenciesOf(m)
        .filter(([d]) => byName.get(d)?.private)
        .map(([d]) => `${m.name} -> ${d}`),
    );
    expect(offending).toEqual([]);
  });

  it('depend through workspace: only on packages that publish their dist', () => {
    const offending = published.flatMap((m) =>
      dependenciesOf(m)
        .filter(([, range]) => range.startsWith('workspace:'))
        .filter(([d]) => !byName.get(d)?.files?.includes('dist'))
        .map(([d]) => `${m.name} -> ${d}`),
    );
    expect(offending).toEqual([]);
  });
});
