// Fuzz of the decode → expression → sink path, through the real file source and file sinks:
// arbitrary JSON values (deep nesting, keys such as `constructor` and `__proto__`, big and odd
// numbers, long strings that would make a backtracking regex explode), lines that are not JSON
// and lines that are not UTF-8. Property: the run ends, every record is written, filtered or
// dead-lettered (once), and every line of every output is one complete JSON value.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile, parsePipelineYaml, runPipeline } from '@tributary/core';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'tributary-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ODD_KEYS = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 's', 'n', 'a', 'prototype'];

/** JSON values with odd keys and the fields the expressions read. */
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(2 ** 53 + 1, -0, 1e308, 5e-324),
    fc.string(),
    fc.constantFrom(`${'a'.repeat(40)}!`, 'a'.repeat(5000), '\u0000', '\ud800', '💧'),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...ODD_KEYS), fc.string({ maxLength: 4 })), tie('v'), { maxKeys: 4 }),
  ),
})).v;

/** One input line: JSON text of a value, a deeply nested one, broken JSON, or bytes that are not UTF-8. */
const line: fc.Arbitrary<Buffer> = fc.oneof(
  { arbitrary: value.map((v) => Buffer.from(JSON.stringify(v) ?? 'null')), weight: 6 },
  {
    arbitrary: fc.integer({ min: 100, max: 6000 }).map((d) => Buffer.from(`${'['.repeat(d)}1${']'.repeat(d)}`)),
    weight: 1,
  },
  {
    arbitrary: fc.integer({ min: 100, max: 6000 }).map((d) => Buffer.from(`${'{"s":'.repeat(d)}1${'}'.repeat(d)}`)),
    weight: 1,
  },
  {
    arbitrary: fc.constantFrom('{"a":', '{"a":1}}', 'nul', '"unterminated', '{"a":1e99999}').map((t) => Buffer.from(t)),
    weight: 1,
  },
  {
    arbitrary: fc
      .uint8Array({ minLength: 1, maxLength: 12 })
      .map((b) => Buffer.concat([Buffer.from('{"s":"'), Buffer.from([0xff, 0xfe, ...b]), Buffer.from('"}')])),
    weight: 1,
  },
);

const STEPS = [
  `  - filter: 'has(event.s) && event.s.matches("^(a+)+$")'`,
  `  - filter: 'has(event.n) && event.n > 1'`,
  `  - filter: 'has(event.constructor) || has(event.toString) || has(event.a)'`,
  `  - map: '{"s": has(event.s) ? event.s : "none", "all": event}'`,
  `  - filter: 'size(string(event)) > 3'`,
  `  - window:
      key: 'has(event.s) ? string(event.s) : "k"'
      tumbling: 1s
      aggregate: { n: count(), total: 'sum(has(event.n) ? event.n : 0)', top: 'max(has(event.n) ? event.n : 0)' }`,
];

describe('fuzz: no input line crashes, hangs or loses a record', () => {
  it('every record is written, filtered or dead-lettered; every output line is complete JSON', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(line, { minLength: 1, maxLength: 40 }),
        fc.subarray(STEPS.slice(0, 5), { minLength: 1 }),
        fc.boolean(),
        async (lines, steps, windowed) => {
          const at = join(dir, String(++run));
          const input = `${at}.in.jsonl`;
          const out = `${at}.out.jsonl`;
          const dead = `${at}.dead.jsonl`;
          // Lines are never blank and hold no newline of their own: one record each.
          const body = lines.map((l) =>
            l.includes(0x0a) || l.toString('latin1').trim() === '' ? Buffer.from('0') : l,
          );
          writeFileSync(input, Buffer.concat(body.flatMap((l) => [l, Buffer.from('\n')])));
          const yaml = `version: 1
name: fuzz
source: { file: { path: ${JSON.stringify(input)}, batchSize: 7 } }
deadLetter: { file: { path: ${JSON.stringify(dead)} } }
steps:
${[...steps, ...(windowed ? [STEPS[5] as string] : [])].join('\n')}
  - sink: { file: { path: ${JSON.stringify(out)} } }
`;
          const parsed = parsePipelineYaml(yaml, 'fuzz.yaml');
          expect(parsed.issues).toEqual([]);
          const compiled = compile({ spec: parsed.spec as never, bindings: new Map(), baseDir: dir });
          const summary = await runPipeline(compiled);
          await compiled.close();
          const outLines = readLines(out);
          const deadLines = readLines(dead);
          for (const l of [...outLines, ...deadLines]) expect(() => JSON.parse(l), l.slice(0, 200)).not.toThrow();
          expect(summary.recordsIn).toBe(body.length);
          expect(deadLines).toHaveLength(summary.deadLettered);
          if (!windowed) {
            // Stateless: one line out per record that was neither filtered nor dead-lettered.
            expect(outLines.length + summary.filtered + summary.deadLettered).toBe(body.length);
          } else {
            // Windowed: the window counts every record that reached it, once.
            const counted = outLines.reduce((a, l) => a + (JSON.parse(l) as { n: number }).n, 0);
            expect(counted + summary.filtered + summary.deadLettered).toBe(body.length);
          }
          // Each dead letter names its record: the line it came from.
          const named = deadLines.map((l) => Number((JSON.parse(l) as { sequenceNumber: string }).sequenceNumber));
          expect(new Set(named).size).toBe(named.length);
          for (const n of named) expect(n >= 1 && n <= body.length).toBe(true);
        },
      ),
      {
        numRuns: Number(process.env.FUZZ_RUNS ?? 200),
        seed: Number(process.env.FUZZ_SEED ?? 20261202),
        endOnFailure: true,
      },
    );
  }, 120_000);
});

function readLines(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => l !== '');
}
