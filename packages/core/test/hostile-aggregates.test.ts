/**
 * Issue 12, row "`sum`/`avg`/`min`/`max` over `1, "2", "abc", true, [1]`": null and absent inputs
 * are skipped (as SQL skips NULL); inputs of another type are no longer skipped silently (nor, for
 * min/max, compared across types): the record is dead-lettered, reason `expression`, with the
 * aggregate's name and function in the message, and is counted in no window.
 */
import { fileSource, MemorySink, max, pipeline, testPipeline } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from './helpers.js';

const inputs: { t: number; v?: unknown }[] = [
  { t: 1, v: 1 },
  { t: 2, v: '2' },
  { t: 3, v: 'abc' },
  { t: 4, v: true },
  { t: 5, v: [1] },
  { t: 6, v: null },
  { t: 7 },
  { t: 8, v: { n: 1 } },
  { t: 9, v: 3 },
];
const refused = ['2', '3', '4', '5', '8']; // sequence numbers of the records of the wrong type

const windowKinds = {
  tumbling: 'tumbling: 1m',
  session: 'session: { gap: 1m }',
  hopping: 'hopping: { size: 1m, every: 30s }',
};

describe('hostile input: aggregates over values of the wrong type', () => {
  for (const [kind, window] of Object.entries(windowKinds)) {
    for (const [op, expected] of [
      ['sum', 4],
      ['avg', 2],
      ['min', 1],
      ['max', 3],
    ] as const) {
      it(`${op} (${kind} window): null and absent skipped, other types dead-lettered naming the aggregate`, async () => {
        // In CEL a missing field is an error (\`No such key\`); `has()` turns it into null.
        const p = stepsPipeline(
          `  - window:\n      ${window}\n      aggregate: { n: count(), total: '${op}(has(event.v) ? event.v : null)' }\n`,
          'eventTime: event.t\n',
        );
        const run = await testPipeline<{ n: number; total: unknown; windowStart: number }>(p, inputs);
        // Hopping: each record is in two windows; the first starts 30 s before 0.
        const windows = kind === 'hopping' ? run.output.filter((w) => w.windowStart === 0) : run.output;
        expect(windows.map((w) => [w.n, w.total])).toEqual([[4, expected]]);
        expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason, d.step])).toEqual(
          refused.map((s) => [s, 'expression', 'window-0']),
        );
        expect(run.deadLetters[1]?.error).toBe(
          `aggregate \`total\`: ${op} needs a number (or null, which is skipped), got string "abc"`,
        );
        expect(run.deadLetters.map((d) => d.error.replace(/.*got /, ''))).toEqual([
          'string "2"',
          'string "abc"',
          'boolean true',
          'an array',
          'an object',
        ]);
      });
    }
  }

  it('a window of only null inputs: sum 0, avg/min/max null', async () => {
    const p = stepsPipeline(
      "  - window:\n      tumbling: 1m\n      aggregate: { s: 'sum(event.v)', a: 'avg(event.v)', lo: 'min(event.v)', hi: 'max(event.v)' }\n",
      'eventTime: event.t\n',
    );
    const run = await testPipeline(p, [{ t: 1, v: null }, { t: 2, v: null }, { t: 3 }]);
    expect(run.output).toMatchObject([{ s: 0, a: null, lo: null, hi: null }]);
    // A field that is missing is a CEL error, as in every expression: dead-lettered, not skipped.
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason, d.error])).toEqual([
      ['3', 'expression', 'No such key: v in `event.v`'],
    ]);
  });

  it('the TypeScript builder: a function input yielding text, NaN or Infinity to max is dead-lettered', async () => {
    const out = new MemorySink<{ hi: unknown }>();
    const p = pipeline('agg')
      .source(fileSource<{ t: number; v: unknown }>({ path: 'x' }))
      .eventTime((e) => e.t)
      .window({ tumbling: '1m', aggregate: { hi: max((e) => e.v as number) } })
      .sink(out)
      .build();
    const values = [5, 'z', Number.NaN, Number.POSITIVE_INFINITY, 2, undefined, null];
    const run = await testPipeline(p, {
      batches: [
        {
          shardId: 's',
          records: values.map((v, i) => ({
            value: { t: i, v },
            partitionKey: 'k',
            sequenceNumber: String(i + 1),
            arrivalTime: 0,
          })),
        },
      ],
    });
    expect(out.values).toMatchObject([{ hi: 5 }]);
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason, d.error])).toEqual([
      ['2', 'expression', 'aggregate `hi`: max needs a number (or null, which is skipped), got string "z"'],
      ['3', 'expression', 'aggregate `hi`: max needs a number (or null, which is skipped), got NaN'],
      ['4', 'expression', 'aggregate `hi`: max needs a number (or null, which is skipped), got Infinity'],
    ]);
  });
});
