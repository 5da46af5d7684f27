/**
 * Issue 12, validation: expressions that would fail every record are refused with file, line and
 * column; `fn:` modules are checked without running them, and only inside the project folder; a
 * hostile record through a pipeline is evaluated or dead-lettered, and the rest goes on.
 */
import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkPipelineFile,
  loadPipelineFile,
  PipelineValidationError,
  parsePipelineYaml,
  testPipeline,
} from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from './helpers.js';

const head = 'version: 1\nname: t\nsource: { file: { path: in.jsonl } }\n';
const lines = (text: string) =>
  parsePipelineYaml(text, 'p.yaml').issues.map((i) => `${i.file}:${i.line}:${i.column}: ${i.message}`);

describe('validation refuses expressions that cannot work', () => {
  it('refuses identifiers other than event, at their line and column', () => {
    expect(lines(`${head}steps:\n  - filter: process.env.HOME != ""\n  - filter: event.a && globalThis.x\n`)).toEqual([
      'p.yaml:5:13: expression is invalid: Unknown variable: process',
      'p.yaml:6:24: expression is invalid: Unknown variable: globalThis',
    ]);
    expect(lines(`${head}steps:\n  - map: { a: "req.body", b: event.b }\n`)).toEqual([
      'p.yaml:5:16: expression is invalid: Unknown variable: req',
    ]);
  });

  it('compiles regular-expression literals given to matches', () => {
    expect(lines(`${head}steps:\n  - filter: 'event.s.matches("(")'\n`)).toEqual([
      'p.yaml:5:30: invalid regular expression "(": missing closing ): `(`',
    ]);
    expect(lines(`${head}steps:\n  - filter: 'event.s.matches("^(a+)+$")'\n  - keyBy: event.s\n`)).toEqual([]);
    // Lookaround is not RE2.
    expect(lines(`${head}steps:\n  - filter: 'event.s.matches("a(?!b)")'\n`)[0]).toMatch(
      /^p\.yaml:5:30: invalid regular expression "a\(\?!b\)"/,
    );
  });

  it('checks expressions inside aggregates and branches too', () => {
    const text = `${head}steps:
  - keyBy: event.u
  - branch: { routes: [ { when: 'env.x == 1', steps: [ { sink: { file: { path: a.jsonl } } } ] } ] }
  - window: { tumbling: 1m, aggregate: { total: sum(self.amount) } }
`;
    const found = lines(text);
    expect(found).toHaveLength(2);
    expect(found[0]).toMatch(/^p\.yaml:6:\d+: expression is invalid: Unknown variable: env$/);
    expect(found[1]).toMatch(/^p\.yaml:7:\d+: expression is invalid: Unknown variable: self$/);
  });
});

describe('hostile records through a pipeline', () => {
  it('evaluates a backtracking pattern, dead-letters a bad record pattern, and handles the rest', async () => {
    const p = stepsPipeline(
      `  - filter: 'event.s.matches("^(a+)+$") || event.s.matches(event.p)'\n  - map: '{"s": event.s, "c": event.constructor}'\n`,
    );
    const run = await testPipeline(p, [
      { s: `${'a'.repeat(40)}!`, p: '!$', constructor: 1 },
      { s: 'b', p: '(', constructor: 2 },
      { s: 'aaaa', p: 'x', constructor: { toString: 3 } },
      { s: 'c', p: 'x', constructor: 4 },
    ]);
    expect(run.output).toEqual([
      { s: `${'a'.repeat(40)}!`, c: 1 },
      { s: 'aaaa', c: { toString: 3 } },
    ]);
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason])).toEqual([['2', 'expression']]);
    expect(run.deadLetters[0]?.error).toContain('invalid regular expression "("');
  });
});

async function project(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'trib-hostile-'));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

const issues = (r: { issues: { line?: number; column?: number; message: string }[] }) =>
  r.issues.map((i) => `${i.line}:${i.column}: ${i.message}`);

describe('validate never runs fn: modules', () => {
  it('checks exports of a module with side effects without executing it', async () => {
    const dir = await project({
      'app/package.json': '{"type": "module"}',
      'app/handlers.js': `import { writeFileSync } from 'node:fs';
writeFileSync(new URL('./ran.txt', import.meta.url), 'executed');
export const isClick = (e) => e.type === 'click';
export function keyOf(e) { return e.u; }
export default function main() {}
`,
      'app/p.yaml': `${head}steps:\n  - filter: { fn: ./handlers.js#isClick }\n  - keyBy: { fn: ./handlers.js#keyOf }\n  - map: { fn: ./handlers.js#default }\n`,
    });
    const checked = await checkPipelineFile(join(dir, 'app/p.yaml'), { importModules: false });
    expect(checked.issues).toEqual([]);
    expect(checked.pipeline?.bindings.size).toBe(0);
    await expect(readFile(join(dir, 'app/ran.txt'), 'utf8')).rejects.toThrow(/ENOENT/);

    await writeFile(
      join(dir, 'app/p.yaml'),
      `${head}steps:\n  - filter: { fn: ./handlers.js#nope }\n  - keyBy: { fn: ./missing.js#k }\n`,
    );
    const bad = await checkPipelineFile(join(dir, 'app/p.yaml'), { importModules: false });
    expect(issues(bad)).toEqual([
      '5:19: module `./handlers.js` has no export `nope` (it exports `isClick`, `keyOf`, `default`)',
      `6:18: cannot load module \`./missing.js\`: Cannot find module ${join(dir, 'app/missing.js')}`,
    ]);
    await expect(readFile(join(dir, 'app/ran.txt'), 'utf8')).rejects.toThrow(/ENOENT/);

    // Running (loading) does import it, as before.
    await writeFile(join(dir, 'app/p.yaml'), `${head}steps:\n  - filter: { fn: ./handlers.js#isClick }\n`);
    const loaded = await loadPipelineFile(join(dir, 'app/p.yaml'));
    expect(typeof loaded.bindings.get('./handlers.js#isClick')).toBe('function');
    expect(await readFile(join(dir, 'app/ran.txt'), 'utf8')).toBe('executed');
  });

  it('lexes TypeScript, CommonJS and re-exports', async () => {
    const dir = await project({
      'package.json': '{}',
      'fns.ts': `import type { Rec } from './types.js';
export type Key = string;
export interface Shape { a: number }
export function isBig(e: Rec): boolean { return (e as { n: number }).n > 10; }
export const double = <T,>(x: T): T => x;
export * from './more.js';
export { pick as choose } from './more.js';
`,
      'more.ts': 'export const pick = (e: { p: unknown }) => e.p;\nexport default 1;\n',
      'types.ts': 'export type Rec = Record<string, unknown>;\n',
      'legacy.cjs': 'exports.one = function () {};\nmodule.exports.two = () => 2;\n',
      'p.yaml': `${head}steps:
  - filter: { fn: ./fns.ts#isBig }
  - map: { fn: ./fns.ts#double }
  - map: { fn: ./fns.ts#pick }
  - map: { fn: ./fns.ts#choose }
  - map: { fn: ./legacy.cjs#one }
  - map: { fn: ./legacy.cjs#two }
  - map: { fn: ./legacy.cjs#default }
`,
    });
    expect(issues(await checkPipelineFile(join(dir, 'p.yaml'), { importModules: false }))).toEqual([]);
    await writeFile(
      join(dir, 'p.yaml'),
      `${head}steps:\n  - map: { fn: ./fns.ts#Key }\n  - map: { fn: ./fns.ts#Shape }\n  - map: { fn: ./legacy.cjs#three }\n`,
    );
    const found = issues(await checkPipelineFile(join(dir, 'p.yaml'), { importModules: false }));
    expect(found).toHaveLength(3);
    expect(found[0]).toMatch(/^5:16: module `\.\/fns\.ts` has no export `Key`/); // a type is not a value
    expect(found[1]).toMatch(/^6:16: module `\.\/fns\.ts` has no export `Shape`/);
    expect(found[2]).toMatch(/^7:16: module `\.\/legacy\.cjs` has no export `three`/);
  });

  it('reports a module it cannot lex, without running it', async () => {
    const dir = await project({
      'p.yaml': `${head}steps:\n  - filter: { fn: ./broken.mjs#f }\n`,
      'broken.mjs': 'export const f = (;\n',
    });
    const found = issues(await checkPipelineFile(join(dir, 'p.yaml'), { importModules: false }));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^5:19: cannot check module `\.\/broken\.mjs`: cannot read its exports/);
  });
});

describe('fn: modules must lie inside the pipeline project', () => {
  it('refuses a module outside the project folder (validate and run), unless allowed', async () => {
    const dir = await project({
      'outside/evil.js': 'export const f = () => true;\n',
      'app/package.json': '{"type": "module"}',
      'app/pipelines/p.yaml': `${head}steps:\n  - filter: { fn: ../../outside/evil.js#f }\n  - map: { fn: ../src/ok.js#g }\n`,
      'app/src/ok.js': 'export const g = (e) => e;\n',
    });
    const file = join(dir, 'app/pipelines/p.yaml');
    const message = `5:19: module \`../../outside/evil.js\` lies outside the pipeline's project folder ${join(dir, 'app')} (the nearest folder with a package.json); move it inside, or allow it with --allow-outside-project (the option allowOutsideProject)`;
    for (const importModules of [false, true]) {
      expect(issues(await checkPipelineFile(file, { importModules }))).toEqual([message]);
      expect(issues(await checkPipelineFile(file, { importModules, allowOutsideProject: true }))).toEqual([]);
    }
    await expect(loadPipelineFile(file)).rejects.toThrow(PipelineValidationError);
    const loaded = await loadPipelineFile(file, { allowOutsideProject: true });
    expect(typeof loaded.bindings.get('../../outside/evil.js#f')).toBe('function');
  });

  it('uses the pipeline file folder when no package.json is above it, and absolute paths count', async () => {
    const dir = await project({ 'p/p.yaml': '', 'other.js': 'export const f = () => true;\n' });
    await writeFile(join(dir, 'p/p.yaml'), `${head}steps:\n  - filter: { fn: ${join(dir, 'other.js')}#f }\n`);
    const found = issues(await checkPipelineFile(join(dir, 'p/p.yaml'), { importModules: false }));
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(`lies outside the pipeline's project folder ${join(dir, 'p')}`);
  });

  it('follows symbolic links before deciding', async () => {
    const dir = await project({ 'app/package.json': '{}', 'secret/x.js': 'export const f = () => 1;\n' });
    await symlink(join(dir, 'secret/x.js'), join(dir, 'app/link.js'));
    await writeFile(join(dir, 'app/p.yaml'), `${head}steps:\n  - filter: { fn: ./link.js#f }\n`);
    const found = issues(await checkPipelineFile(join(dir, 'app/p.yaml'), { importModules: false }));
    expect(found).toHaveLength(1);
    expect(found[0]).toContain('lies outside');
  });
});
