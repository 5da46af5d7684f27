/**
 * Issue 12, row "a far-future record (year 9999)": correct by the watermark rules, one such record
 * closes every open window and sends what follows to the late output. `maxFutureSkew` bounds how
 * far ahead of its arrival time an event time may be: a record further ahead is dead-lettered
 * (reason `event-time`) before it touches any watermark.
 */
import { compile, count, fileSource, MemorySink, parsePipelineYaml, pipeline, testPipeline } from '@tributary/core';
import { describe, expect, it } from 'vitest';
import { yamlPipeline } from './helpers.js';

const HOUR = 3_600_000;
const now = Date.UTC(2024, 0, 1, 12);
const y9999 = Date.UTC(9999, 0, 1);

const windowed = (extra: string) =>
  yamlPipeline(`version: 1
name: skew
source: { file: { path: in.jsonl } }
eventTime: event.t
${extra}steps:
  - window:
      tumbling: 1m
      aggregate: { n: count() }
`);

/** Three records a minute apart around `now`, the year-9999 one among them; all arrive at `now`. */
const input = [{ t: now }, { t: y9999 }, { t: now + 60_000 }, { t: now + 61_000 }];

describe('hostile input: far-future event times', () => {
  it('without a bound, one year-9999 record sends every later record to the late output (the risk)', async () => {
    const run = await testPipeline(windowed(''), input, { arrivalTime: now, batchSize: 1 });
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason])).toEqual([
      ['3', 'late'],
      ['4', 'late'],
    ]);
  });

  it('with maxFutureSkew, the record is dead-lettered as event-time with shard and sequence number; the watermark does not move and later records count', async () => {
    const run = await testPipeline(windowed('maxFutureSkew: 1h\n'), input, { arrivalTime: now, batchSize: 1 });
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.shardId, d.reason, d.step])).toEqual([
      ['2', 'shard-0', 'event-time', 'eventTime'],
    ]);
    expect(run.deadLetters[0]?.error).toBe(
      'event time 9999-01-01T00:00:00.000Z is more than maxFutureSkew (1h) ahead of its arrival time 2024-01-01T12:00:00.000Z',
    );
    expect(run.output).toMatchObject([
      { windowStart: now, n: 1 },
      { windowStart: now + 60_000, n: 2 },
    ]);
  });

  it('the bound is inclusive and counts from arrival time; records behind their arrival time are never refused by it', async () => {
    const run = await testPipeline(
      windowed('maxFutureSkew: 3600000\n'),
      [{ t: now + HOUR }, { t: now + HOUR + 1 }, { t: now - 100 * HOUR }],
      { arrivalTime: now },
    );
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason])).toEqual([['2', 'event-time']]);
  });

  it('the TypeScript builder takes it with eventTime', async () => {
    const out = new MemorySink();
    const p = pipeline('skew')
      .source(fileSource<{ t: number }>({ path: 'x' }))
      .eventTime((e) => e.t, { maxFutureSkew: '5m' })
      .window({ tumbling: '1m', aggregate: { n: count() } })
      .sink(out)
      .build();
    expect(p.spec.maxFutureSkew).toBe('5m');
    expect(compile(p).describe()).toContain('event time   fn ');
    expect(compile(p).describe()).toContain('(at most 5m ahead of arrival)');
    const run = await testPipeline(p, [{ t: now }, { t: now + 6 * 60_000 }], { arrivalTime: now });
    expect(run.deadLetters.map((d) => [d.sequenceNumber, d.reason])).toEqual([['2', 'event-time']]);
  });

  it('is validated: a duration, and only with an eventTime', () => {
    const bad = parsePipelineYaml(
      'version: 1\nname: p\nsource: { file: { path: x } }\neventTime: event.t\nmaxFutureSkew: soon\nsteps: []\n',
      'p.yaml',
    );
    expect(bad.issues.map((i) => `${i.line}:${i.column}: ${i.message}`)).toEqual([
      '5:16: expected a duration such as 500ms, 30s, 5m or 1h, got "soon"',
    ]);
    // Validation refuses it at its line and column; compile refuses it too (specs not from YAML).
    const alone = 'version: 1\nname: p\nsource: { file: { path: x } }\nmaxFutureSkew: 1h\nsteps: []\n';
    expect(() => compile(yamlPipeline(alone))).toThrow(
      /`maxFutureSkew` bounds the `eventTime` of records; this pipeline has no `eventTime`/,
    );
  });
});
