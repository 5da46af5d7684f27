// README: `validate` reports "every problem at once". A `fn:` reference to an export its module
// does not have stands in like the others, so compiling goes on and the problems compile finds
// (here a hopping window whose `every` exceeds its size) are reported in the same run.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '..', 'dist', 'bin.js');

function validateIn(files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'trib-every-'));
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return spawnSync(process.execPath, ['--no-warnings', bin, 'validate', 'p.yaml'], { cwd: dir, encoding: 'utf8' });
}

// The module is never imported (validation runs no user code): importing it would throw.
const fns = 'export function big() { return true; }\nthrow new Error("imported");\n';

describe('tributary validate', () => {
  it('reports a missing fn export and the compile-time problems of the same file', () => {
    const r = validateIn({
      'fns.js': fns,
      'p.yaml': `version: 1
name: every
source: { file: { path: in.jsonl } }
steps:
  - filter: { fn: ./fns.js#big }
  - keyBy: event.user
  - window:
      hopping: { size: 1m, every: 2m }
      aggregate: { n: count() }
  - filter: { fn: ./fns.js#nope }
  - map: { fn: ./missing.js#f }
`,
    });
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l !== '')).toEqual([
      'p.yaml:10:19: module `./fns.js` has no export `nope` (it exports `big`)',
      expect.stringMatching(/^p\.yaml:11:16: .*missing\.js/),
      'p.yaml:8:7: hopping `every` must not exceed `size` (records would fall between windows)',
    ]);
  });

  it('refuses a file whose only problem is a missing export, without saying ok', () => {
    const r = validateIn({
      'fns.js': fns,
      'p.yaml':
        'version: 1\nname: one\nsource: { file: { path: in.jsonl } }\nsteps:\n  - filter: { fn: ./fns.js#nope }\n',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('p.yaml:5:19: module `./fns.js` has no export `nope` (it exports `big`)\n');
  });
});
