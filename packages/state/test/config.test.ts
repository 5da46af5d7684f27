// Store options: YAML validation with positions, construction-time checks with exact messages,
// the typed builder, and what happens when a window outgrows an item.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compile,
  count,
  fileSource,
  loadPipelineFile,
  MemorySink,
  PipelineValidationError,
  parsePipelineYaml,
  pipeline,
} from '@tributary/core';
import { dynamoDbState, redisState, StateConfigError } from '@tributary/state';
import { describe, expect, it } from 'vitest';
import { freshName, processOf, stateYaml, useBackends, yamlPipeline } from './backends.js';

const servers = useBackends();

const withState = (state: string, kind = 'tumbling: 1m') =>
  `version: 1\nname: p\nsource: { file: { path: in.jsonl } }\nsteps:\n  - window:\n      ${kind}\n      aggregate: { n: count() }\n      state: ${state}\n`;

const problems = (yaml: string) =>
  parsePipelineYaml(yaml, 'p.yaml').issues.map((i) => `${i.line}:${i.column}: ${i.message}`);

describe('state store options', () => {
  it('YAML: bad options are reported with line and column before anything runs', () => {
    expect(problems(withState('{ dynamodb: { table: ab } }'))).toEqual([
      '8:35: expected at least 3 characters, got "ab"',
    ]);
    expect(problems(withState('{ dynamodb: { table: t1x, partitons: 4 } }'))).toEqual([
      expect.stringMatching(/^8:\d+: unknown option `partitons` \(did you mean `partitions`\?\)/),
    ]);
    expect(problems(withState('{ postgres: {} }'))).toEqual([
      '8:16: unknown state store `postgres`; expected one of memory, ref, dynamodb, redis',
    ]);
    expect(problems(withState('{ redis: { keyPrefix: x } }'))).toEqual([
      '8:23: expected either `url` or `cluster` (not both)',
    ]);
    expect(problems(withState('{ redis: { url: "redis://h:1" } }'))).toEqual([]);
    expect(problems(withState('memory'))).toEqual([]);
  });

  it('a shared store takes every window kind', async () => {
    const state = stateYaml(servers, 'redis').replace(/^state: /, '');
    for (const kind of ['tumbling: 1m', 'hopping: { size: 1m, every: 30s }', 'session: { gap: 1m }', 'sliding: 1m']) {
      const compiled = compile(yamlPipeline(withState(state, kind)));
      await compiled.close();
    }
  });

  it('checks options at construction with exact messages', () => {
    expect(() => dynamoDbState({ table: 'x' })).toThrow(
      new StateConfigError('Expected `table` to be a DynamoDB table name of 3 or more characters, got "x"'),
    );
    expect(() => dynamoDbState({ table: 'ok-table', partitions: 0 })).toThrow(
      'Expected `partitions` to be an integer from 1 to 1000, got 0',
    );
    expect(() => dynamoDbState({ table: 'ok-table', progressPartitions: 65 })).toThrow(
      'Expected `progressPartitions` to be an integer from 1 to 64, got 65',
    );
    expect(() => redisState({})).toThrow(
      'Expected exactly one of `url`, `cluster` or `client` for the redis state store',
    );
    expect(() => redisState({ url: 'http://x' })).toThrow(
      'Expected `url` to start with redis:// or rediss://, got http://x',
    );
  });

  it('an option the store refuses at construction is reported at the store spec, with line and column', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-state-options-'));
    const file = join(dir, 'pipeline.yaml');
    // The schema takes any url; the redis store refuses one that is not redis:// when it is created.
    await writeFile(file, withState('{ redis: { url: "http://cache:6379" } }'));
    const p = await loadPipelineFile(file);
    let thrown: unknown;
    try {
      compile(p);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PipelineValidationError);
    expect((thrown as PipelineValidationError).issues).toEqual([
      {
        file,
        line: 8,
        column: 14,
        path: '/steps/0/window/state',
        message: 'Expected `url` to start with redis:// or rediss://, got http://cache:6379',
      },
    ]);
    expect((thrown as PipelineValidationError).cause).toBeInstanceOf(StateConfigError);
  });

  it('the typed builder takes a store object and counts exactly', async () => {
    const state = dynamoDbState({ table: servers.dynamodb.table, endpoint: servers.dynamodb.endpoint });
    const sink = new MemorySink<{ key: string; n: number }>();
    const p = pipeline(freshName())
      .source(fileSource<{ user: string; t: number }>({ path: '-' }))
      .eventTime((e) => e.t)
      .window({ key: (e) => e.user, tumbling: 1000, aggregate: { n: count() }, state })
      .sink(sink)
      .build();
    const c = compile(p, { deadLetter: new MemorySink() });
    const users = ['ann', 'bob', 'ann', 'cy', 'ann', 'bob'];
    await c.process({
      shardId: 's0',
      records: users.map((user, i) => ({
        value: { user, t: 500 + i },
        partitionKey: user,
        sequenceNumber: String(i + 1),
        arrivalTime: 0,
      })),
    });
    await c.flush();
    await c.close();
    const counts = Object.fromEntries(sink.values.map((v) => [v.key, v.n]));
    const expected: Record<string, number> = {};
    for (const u of users) expected[u] = (expected[u] ?? 0) + 1;
    expect(counts).toEqual(expected);
    expect(state.backend.calls).toBeGreaterThan(0);
  });

  it('a window that would outgrow a DynamoDB item sends its records to the dead-letter output, naming the limit; others go on', async () => {
    const big = 'x'.repeat(20_000);
    const proc = processOf(
      yamlPipeline(
        `version: 1\nname: ${freshName()}\nsource: { file: { path: in.jsonl } }\neventTime: event.t\nsteps:\n  - window:\n      key: event.k\n      tumbling: 1000\n      aggregate: { d: count_distinct(event.s) }\n      ${stateYaml(servers, 'dynamodb', ', partitions: 1')}\n`,
      ),
    );
    // 30 distinct 20 KB strings for key "big" (600 KB of state), and one small record elsewhere.
    const records = Array.from({ length: 30 }, (_, i) => ({ k: 'big', t: 100, s: `${i}${big}` }));
    records.push({ k: 'small', t: 1500, s: 'tiny' }); // another window: another item
    await proc.process({
      shardId: 's0',
      records: records.map((value, i) => ({
        value,
        partitionKey: value.k,
        sequenceNumber: String(i + 1),
        arrivalTime: 0,
      })),
    });
    await proc.flush();
    await proc.close();
    const dead = proc.dead.values;
    expect(dead).toHaveLength(30);
    expect(dead.every((d) => d.reason === 'state')).toBe(true);
    expect(dead[0]?.error).toMatch(
      /over the 390000-byte item limit of dynamodb table tributary-state; raise `partitions`/,
    );
    expect(proc.out).toEqual([{ key: 'small', windowStart: 1000, windowEnd: 2000, d: 1 }]);
  });
});
