/**
 * Issue 12, row "a JSON record nested ~5,000 deep": decoding refuses records nested more than
 * MAX_NESTING levels (dead-letter `decode`), and no sink or dead-letter writer can be crashed by a
 * record — a value made by a `map` that is circular, too deep or holds a BigInt is dead-lettered
 * by the sink that cannot write it (reason `sink`), and the dead-letter output writes a safe form.
 */

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  compile,
  type DeadLetterRecord,
  FileSink,
  fileSource,
  pipeline,
  runPipeline,
  type SourceBatch,
  StreamSink,
  testPipeline,
} from '@tributary/core';
import { envelope } from '@tributary/core/spi';
import { describe, expect, it } from 'vitest';
import { jsonSafe, MAX_NESTING, safeJsonLine } from '../src/sinks/json.js';
import { fileCopyPipeline, jsonLinesOf as readLines, yamlPipeline } from './helpers.js';

/** `{"a":{"a":…1…}}` nested `depth` objects deep. */
const deepText = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
const deepArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
function deepValue(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

describe('hostile input: nesting at decode', () => {
  it(`takes a record nested ${MAX_NESTING} levels and dead-letters one nested deeper (reason decode), as text and as a decoded value`, async () => {
    expect(MAX_NESTING).toBe(512);
    const p = yamlPipeline('version: 1\nname: t\nsource: { file: { path: x } }\nsteps: []\n');
    const batch: SourceBatch = {
      shardId: 's1',
      records: [
        { data: deepText(MAX_NESTING), partitionKey: 'k', sequenceNumber: '1', arrivalTime: 0 },
        { data: deepText(MAX_NESTING + 1), partitionKey: 'k', sequenceNumber: '2', arrivalTime: 0 },
        { data: deepArray(5000), partitionKey: 'k', sequenceNumber: '3', arrivalTime: 0 },
        { data: `{"wide":[${'[1],'.repeat(10_000)}[1]]}`, partitionKey: 'k', sequenceNumber: '4', arrivalTime: 0 },
        { value: deepValue(MAX_NESTING + 1), partitionKey: 'k', sequenceNumber: '5', arrivalTime: 0 },
        { value: { ok: true }, partitionKey: 'k', sequenceNumber: '6', arrivalTime: 0 },
      ],
    };
    const run = await testPipeline(p, { batches: [batch] });
    expect(run.output.length).toBe(3);
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason, d.step, d.shardId])).toEqual([
      ['2', 'decode', 'source', 's1'],
      ['3', 'decode', 'source', 's1'],
      ['5', 'decode', 'source', 's1'],
    ]);
    expect(run.deadLetters[0]?.error).toBe('record nests arrays and objects more than 512 levels deep');
    expect(run.deadLetters[0]?.data).toBe(deepText(MAX_NESTING + 1));
    // The decoded value handed over by a source is shown in a form every output can write.
    expect(() => JSON.stringify(run.deadLetters[2]?.data)).not.toThrow();
  });

  it('a file of 5,000-deep records among good ones: the run ends, the good records are written, the deep ones dead-lettered to the dead-letter file with their line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-deep-'));
    const lines = ['{"n":1}', deepText(5000), '{"n":3}', deepArray(100_000), '{"n":5}'];
    await writeFile(join(dir, 'in.jsonl'), `${lines.join('\n')}\n`);
    const p = fileCopyPipeline('deep', dir);
    const summary = await runPipeline(compile(p));
    expect(summary).toMatchObject({ recordsIn: 5, recordsOut: 3, deadLettered: 2 });
    expect(await readLines(join(dir, 'out.jsonl'))).toEqual([{ n: 1 }, { n: 3 }, { n: 5 }]);
    const dead = (await readLines(join(dir, 'dead.jsonl'))) as DeadLetterRecord[];
    expect(dead.map((d) => [d.line, d.reason, d.sequenceNumber, d.shardId])).toEqual([
      [2, 'decode', '2', 'file'],
      [4, 'decode', '4', 'file'],
    ]);
  });
});

describe('hostile input: values no sink can write', () => {
  const circular = () => {
    const o: Record<string, unknown> = { id: 'c' };
    o.self = o;
    return o;
  };
  const made: Record<string, () => unknown> = {
    circular,
    bigint: () => ({ id: 'b', n: 10n ** 30n }),
    deep: () => deepValue(6000),
    throwingGetter: () => ({
      get boom() {
        throw new Error('no');
      },
    }),
  };

  it('a file sink dead-letters (reason sink) what a map made unwritable — circular, 6,000 deep, a throwing getter — writes bigints as text, and the batch goes on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-unwritable-'));
    await writeFile(
      join(dir, 'in.jsonl'),
      `${Object.keys(made)
        .map((kind, i) => JSON.stringify({ kind, i }))
        .join('\n')}\n{"kind":"plain"}\n`,
    );
    const p = pipeline('unwritable')
      .source(fileSource<{ kind: string }>({ path: 'in.jsonl' }))
      .map((e) => (made[e.kind] ?? (() => e))())
      .sink({ name: 'out', file: { path: 'out.jsonl' } })
      .deadLetter({ file: { path: 'dead.jsonl' } })
      .build({ baseDir: dir });
    const summary = await runPipeline(compile(p));
    expect(summary).toMatchObject({ recordsIn: 5, recordsOut: 2, deadLettered: 3 });
    expect(await readLines(join(dir, 'out.jsonl'))).toEqual([
      { id: 'b', n: '1000000000000000000000000000000' },
      { kind: 'plain' },
    ]);
    const dead = (await readLines(join(dir, 'dead.jsonl'))) as DeadLetterRecord[];
    expect(dead.map((d) => [d.sequenceNumber, d.reason, d.step])).toEqual([
      ['1', 'sink', 'out'],
      ['3', 'sink', 'out'],
      ['4', 'sink', 'out'],
    ]);
    expect(dead[0]?.error).toMatch(/cannot be written as JSON: it is circular/);
    expect(dead[1]?.error).toMatch(/cannot be written as JSON: it is nested too deeply/);
    expect(dead[0]?.value).toEqual({ id: 'c', self: '[circular]' });
    expect(dead[2]?.value).toEqual({ boom: '[unreadable]' });
  });

  it('the dead-letter writer never throws: a file or stream dead-letter output (no context) writes a safe form of any value', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-dlq-'));
    const file = new FileSink(join(dir, 'dead.jsonl'));
    const text = ['', ''];
    const streams = [new PassThrough(), new PassThrough()];
    for (const [i, st] of streams.entries()) {
      st.on('data', (c) => {
        text[i] += c;
      });
    }
    const sinks = [file, new StreamSink(streams[0] as PassThrough), new StreamSink(streams[1] as PassThrough, true)];
    const records = Object.values(made).map((f, i) =>
      envelope({ partitionKey: 'k', sequenceNumber: String(i), arrivalTime: 0 }, 's', f(), 0),
    );
    for (const s of sinks) await s.write(records);
    await file.close();
    const lines = await readLines(join(dir, 'dead.jsonl'));
    expect(lines.length).toBe(4);
    expect(lines[0]).toEqual({ id: 'c', self: '[circular]' });
    expect(lines[1]).toEqual({ id: 'b', n: '1000000000000000000000000000000' });
    expect(JSON.stringify(lines[2])).toContain(`[nested deeper than ${MAX_NESTING} levels]`);
    expect(lines[3]).toEqual({ boom: '[unreadable]' });
    expect(
      (text[0] as string)
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual(lines);
    expect(text[1]).toContain('"self":"[circular]"'); // pretty output falls back to one line for such a value
  });

  it('a failure after a map made a circular value: the dead letter carries a writable copy of it', async () => {
    const p = pipeline('late-fail')
      .source(fileSource<{ n: number }>({ path: 'x' }))
      .map(() => circular())
      .filter(() => {
        throw new Error('user code failed');
      })
      .build();
    const run = await testPipeline(p, [{ n: 1 }]);
    expect(run.deadLetters.map((d) => [d.reason, d.error])).toEqual([['function', 'user code failed']]);
    expect(() => JSON.stringify(run.deadLetters[0])).not.toThrow();
    expect(run.deadLetters[0]?.value).toEqual({ id: 'c', self: '[circular]' });
  });
});

describe('jsonSafe', () => {
  it('returns a writable value itself, and a writable copy of anything else, never throwing', () => {
    const plain = { a: [1, 'x', null, { b: true }], d: new Date(0) };
    expect(jsonSafe(plain)).toBe(plain);
    expect(jsonSafe(5n)).toBe('5');
    expect(jsonSafe({ a: [1n] })).toEqual({ a: ['1'] });
    const shared = { x: 1 };
    expect(jsonSafe({ p: shared, q: shared, n: 1n })).toEqual({ p: { x: 1 }, q: { x: 1 }, n: '1' }); // shared is not circular
    const arr: unknown[] = [1];
    arr.push(arr);
    expect(jsonSafe(arr)).toEqual([1, '[circular]']);
    expect(
      jsonSafe({
        toJSON() {
          throw new Error('x');
        },
      }),
    ).toBe('[unreadable]');
    const odd = JSON.parse('{"__proto__":{"polluted":1},"constructor":"x"}');
    odd.n = 1n;
    const copy = jsonSafe(odd) as Record<string, unknown>;
    expect(Object.hasOwn(copy, '__proto__')).toBe(true);
    expect(JSON.stringify(copy)).toBe('{"__proto__":{"polluted":1},"constructor":"x","n":"1"}');
    expect(({} as { polluted?: number }).polluted).toBeUndefined();
    const proxy = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('hostile');
        },
      },
    );
    expect(jsonSafe(proxy)).toBe('[value cannot be written as JSON]');
    expect(safeJsonLine(proxy)).toBe('"[value cannot be written as JSON]"');
    const deep = jsonSafe(deepValue(10_000));
    expect(JSON.stringify(deep).length).toBeLessThan(10_000);
  });
});
