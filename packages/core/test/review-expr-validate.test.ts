/**
 * Review of issue 12: what `validate` passed and `run` then refused, YAML nested so deeply the
 * parser overflowed its stack, and pipeline files that are not regular or not small.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPipelineFile, parsePipelineYaml } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { MAX_NESTING } from '../src/yaml/load.js';

const head = 'version: 1\nname: t\nsource: { file: { path: in.jsonl } }\n';
const lines = (r: { issues: { line?: number; column?: number; message: string }[] }) =>
  r.issues.map((i) => `${i.line}:${i.column}: ${i.message}`);

async function project(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'trib-review-'));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

describe('validation refuses what run would refuse', () => {
  it('refuses maxFutureSkew without eventTime, at its line and column', () => {
    const r = parsePipelineYaml(`${head}maxFutureSkew: 5m\nsteps: []\n`, 'p.yaml');
    expect(lines(r)).toEqual([
      '4:16: `maxFutureSkew` bounds the `eventTime` of records; this pipeline has no `eventTime`',
    ]);
    expect(parsePipelineYaml(`${head}eventTime: event.t\nmaxFutureSkew: 5m\nsteps: []\n`).issues).toEqual([]);
  });

  it('refuses numbers YAML reads as infinite or NaN, at their line and column', () => {
    const r = parsePipelineYaml(`${head}eventTime: event.t\nmaxFutureSkew: 1e999\nsteps: []\n`, 'p.yaml');
    expect(lines(r)).toEqual(['5:16: expected a finite number, got Infinity']);
    const s = parsePipelineYaml(`${head}eventTime: event.t\nmaxFutureSkew: .nan\nsteps: []\n`, 'p.yaml');
    expect(lines(s)).toEqual(['5:16: expected a finite number, got NaN']);
  });

  it('refuses a TypeScript fn: module where Node cannot import TypeScript, saying what to do', async () => {
    const dir = await project({
      'package.json': '{}',
      'ts.ts': 'export function f(e: unknown): boolean { return e !== null; }\n',
      'p.yaml': `${head}steps:\n  - filter: { fn: ./ts.ts#f }\n`,
    });
    const file = join(dir, 'p.yaml');
    const r = await checkPipelineFile(file, { importModules: false, typeScript: false });
    expect(lines(r)).toEqual([
      `5:19: module \`./ts.ts\` is TypeScript, which this Node (${process.version}) cannot import: run on Node 22.6 or later (before 23.6 with --experimental-strip-types), register a loader (node --import tsx), or compile it to JavaScript and name the .js file`,
    ]);
    expect((await checkPipelineFile(file, { importModules: false, typeScript: true })).issues).toEqual([]);
  });

  it('names the CLI flag for modules outside the project', async () => {
    const dir = await project({
      'app/package.json': '{}',
      'app/p.yaml': `${head}steps:\n  - filter: { fn: ../out.js#f }\n`,
      'out.js': 'export const f = () => true;\n',
    });
    const r = await checkPipelineFile(join(dir, 'app/p.yaml'), { importModules: false });
    expect(r.issues[0]?.message).toContain('allow it with --allow-outside-project (the option allowOutsideProject)');
  });
});

describe('YAML nested too deeply', () => {
  it(`refuses nesting deeper than ${MAX_NESTING} levels at the first too-deep node, for flow and block style`, () => {
    const flow = parsePipelineYaml(`a: ${'['.repeat(1000)}${']'.repeat(1000)}\n`, 'e.yaml');
    // `a:` opens level 1, so the 64th `[` (column 4 + 63) is level 65.
    expect(lines(flow)).toEqual([
      `1:${4 + MAX_NESTING - 1}: nested more than ${MAX_NESTING} levels deep (maps and lists inside each other)`,
    ]);
    let block = '';
    for (let i = 0; i < 1000; i++) block += `${' '.repeat(i)}k:\n`;
    const b = parsePipelineYaml(block, 'e.yaml');
    expect(lines(b)).toEqual([
      `${MAX_NESTING + 1}:${MAX_NESTING + 1}: nested more than ${MAX_NESTING} levels deep (maps and lists inside each other)`,
    ]);
    const mixed = parsePipelineYaml(`a: ${'{b: ['.repeat(500)}1${']}'.repeat(500)}\n`, 'e.yaml');
    expect(mixed.issues[0]?.message).toContain(`nested more than ${MAX_NESTING} levels`);
    expect(JSON.stringify(mixed.issues)).not.toContain('call stack');
    // At the limit it parses (and is then checked against the schema as usual).
    const ok = parsePipelineYaml(`a: ${'['.repeat(MAX_NESTING - 1)}${']'.repeat(MAX_NESTING - 1)}\n`);
    expect(JSON.stringify(ok.issues)).not.toContain('nested more than');
  });
});

describe('pipeline files are read bounded, regular files only', () => {
  it('refuses devices without reading them', async () => {
    for (const dev of ['/dev/zero', '/dev/urandom']) {
      const r = await checkPipelineFile(dev, { importModules: false });
      expect(r.issues.map((i) => i.message)).toEqual([
        'cannot read pipeline file: it is a character device, not a regular file',
      ]);
    }
  });

  it('refuses a FIFO without waiting for a writer, and a directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-review-'));
    execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
    const r = await checkPipelineFile(join(dir, 'fifo.yaml'), { importModules: false });
    expect(r.issues.map((i) => i.message)).toEqual([
      'cannot read pipeline file: it is a FIFO (named pipe), not a regular file',
    ]);
    const d = await checkPipelineFile(dir, { importModules: false });
    expect(d.issues[0]?.message).toMatch(/^cannot read pipeline file: EISDIR/);
  });

  it('refuses a file over 1 MiB after reading at most 1 MiB + 1 byte', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-review-'));
    await writeFile(join(dir, 'big.yaml'), `# ${'x'.repeat(1024 * 1024)}\n`);
    const r = await checkPipelineFile(join(dir, 'big.yaml'), { importModules: false });
    expect(lines(r)).toEqual(['1:1: pipeline file is larger than 1048576 bytes (1 MiB)']);
  });
});
