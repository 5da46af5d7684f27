// tributary synth for Lambda: the bundle runs (imported and invoked here), and the template is
// checked offline against the CloudFormation resource specification (@aws-cdk/cfnspec), not by eye.

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ListTablesCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { loadPipelineFile, PipelineValidationError } from '@tributary/core';
import '@tributary/sinks';
import { main } from '@tributary/cli';
import { synth, template } from '@tributary/cli/synth';
import { createHandler } from '@tributary/runtime-lambda';
import { unzipSync } from 'fflate';
import { describe, expect, it, vi } from 'vitest';
import {
  createStateTables,
  createStream,
  dynamoDbClient,
  kinesisClient,
  startDynalite,
  startKinesalite,
  startRedis,
  streamData,
} from '../../../test-support/emulators.js';
import { dynamoDbEventRecord, kinesisEventRecord } from '../../../test-support/lambdaEvents.js';
import { validate } from './support/cfnspec.js';

/**
 * A Kinesis event of one shard carrying these values as JSON (partition key: `user`, or k). It
 * names no event source ARN: the handler then lists no shards (there is no AWS account here).
 */
function kinesisEvent(values: readonly object[]) {
  return {
    Records: values.map((v, i) =>
      kinesisEventRecord({
        shardId: 'shardId-000000000000',
        arn: '',
        sequenceNumber: String(i + 1),
        partitionKey: (v as { user?: string }).user ?? 'k',
        data: Buffer.from(JSON.stringify(v)).toString('base64'),
        arrivalSeconds: 1,
      }),
    ),
  };
}

const STATE_LOST =
  'window state in memory would be lost whenever a Lambda container ends (at any time, without notice) — keep it in a shared store (state: { dynamodb: { table } } or { redis: { url } }), or accept the loss with state: { memory: { volatile: true } }';

/** Standard error of a command run in process (nothing is written to standard output). */
function errorOutput() {
  let text = '';
  const write = (s: string) => {
    text += s;
    return true;
  };
  const io = { out: { write: () => true }, err: { write } } as never as Parameters<typeof main>[1];
  return Object.assign(io as object, { text: () => text }) as typeof io & { text(): string };
}

/** Imports a synthesised bundle and returns its handler. */
async function bundledHandler(bundle: string): Promise<(event: unknown) => Promise<unknown>> {
  return ((await import(pathToFileURL(bundle).href)) as { handler: (e: unknown) => Promise<unknown> }).handler;
}

/** Actions on data (not the logs', nor the VPC network interfaces' and X-Ray's, which take no resource). */
const dataAction = (a: string) => !/^(logs|ec2|xray):/.test(a);

describe('tributary synth (lambda)', () => {
  it('the template is valid against the CloudFormation specification, and names its resources in the policy', async () => {
    const p = await loadPipelineFile(
      join(import.meta.dirname, '..', '..', '..', 'examples', 'clicks-per-user', 'pipeline.yaml'),
    );
    const withState = structuredClone(p.spec);
    const win = withState.steps.find((s) => 'window' in s) as { window: Record<string, unknown> };
    win.window.state = { dynamodb: { table: 'clicks-state' } };
    const t = template(withState);
    expect(validate(t)).toEqual([]);
    const resources = t.Resources as Record<string, { Type: string; Properties: Record<string, unknown> }>;
    expect(resources.StateTable0?.Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'ttl', Enabled: true });
    expect(resources.EventSourceMapping?.Properties).toMatchObject({
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': ['FailureQueue', 'Arn'] } } },
    });
    type Statement = { Action: string[]; Resource: unknown };
    // A statement under a condition is `{ "Fn::If": [condition, statement, AWS::NoValue] }`.
    const statements = (
      (
        (resources.Role as { Properties: Record<string, unknown> }).Properties.Policies as {
          PolicyDocument: { Statement: (Statement | { 'Fn::If': [string, Statement, unknown] })[] };
        }[]
      )[0]?.PolicyDocument.Statement ?? []
    ).map((s) => ('Fn::If' in s ? s['Fn::If'][1] : s));
    expect(statements.length).toBeGreaterThan(2);
    for (const s of statements) {
      if (s.Action.some(dataAction)) expect(JSON.stringify(s.Resource)).not.toContain('"*"');
    }
    // The state table is the stack's own (a generated name): the store's statement names it.
    expect(JSON.stringify(statements)).toContain('{"Fn::GetAtt":["StateTable0","Arn"]}');
    expect(JSON.stringify(statements)).not.toContain('clicks-state');
    // The validator itself catches mistakes: a misspelt property and a missing required one.
    const broken = structuredClone(t) as typeof t;
    const bm = (broken.Resources as Record<string, { Properties: Record<string, unknown> }>).EventSourceMapping as {
      Properties: Record<string, unknown>;
    };
    bm.Properties.BisectBatchOnFunctionErrors = true;
    delete (broken.Resources as Record<string, { Properties: Record<string, unknown> }>).Function?.Properties.Role;
    expect(validate(broken).sort()).toEqual([
      'EventSourceMapping.BisectBatchOnFunctionErrors: not a property of AWS::Lambda::EventSourceMapping',
      'Function.Role: required',
    ]);
  });

  it('refuses a window whose state would die with a Lambda container, unless it opts in to volatile memory state', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-synth-mem-'));
    const yaml = (state: string) =>
      `version: 1\nname: synth-mem\nsource: { file: { path: in.jsonl } }\nsteps:\n  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }${state} }\n  - sink: { stdout: {} }\n`;
    const refusal = async (file: string) => {
      const p = await loadPipelineFile(file);
      const err = await synth(p, { outDir: join(dir, 'dist') }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PipelineValidationError);
      return (err as PipelineValidationError).issues;
    };
    for (const [i, state] of ['', ', state: memory', ', state: { memory: {} }'].entries()) {
      const file = join(dir, `p${i}.yaml`);
      await writeFile(file, yaml(state));
      // At the window step's spec: line 5, column 13.
      expect(await refusal(file)).toEqual([
        { file, line: 5, column: 13, path: '/steps/0/window', message: STATE_LOST },
      ]);
    }
    // One issue for each window step that would lose its state, a nested one at its own path.
    const two = join(dir, 'two.yaml');
    await writeFile(
      two,
      `version: 1
name: synth-mem
source: { file: { path: in.jsonl } }
steps:
  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }, state: { memory: { volatile: true } } }
  - branch:
      routes:
        - when: event.n > 0
          steps:
            - window:
                key: event.k
                session: { gap: 1m }
                aggregate: { n: count() }
  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() } }
`,
    );
    expect(await refusal(two)).toEqual([
      { file: two, line: 11, column: 17, path: '/steps/1/branch/routes/0/steps/0/window', message: STATE_LOST },
      { file: two, line: 14, column: 13, path: '/steps/2/window', message: STATE_LOST },
    ]);
    // The command prints them as validate does, one per line, and fails.
    const io = errorOutput();
    const cli = await main(['synth', two, '--runtime', 'lambda', '--out', join(dir, 'dist-cli')], io);
    expect(cli).toBe(2);
    expect(io.text()).toBe(`${two}:11:17: ${STATE_LOST}\n${two}:14:13: ${STATE_LOST}\n`);
    await writeFile(join(dir, 'ok.yaml'), yaml(', state: { memory: { volatile: true } }'));
    const ok = await synth(await loadPipelineFile(join(dir, 'ok.yaml')), { outDir: join(dir, 'dist-ok') });
    expect(ok.bundleBytes).toBeGreaterThan(0);
  });

  it('bundles a pipeline with its fn modules into one file that runs as a Lambda handler', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trib-synth-'));
    await writeFile(join(dir, 'fns.mjs'), 'export const big = (e) => e.amount >= 10;\n');
    const out = join(dir, 'out.jsonl');
    await writeFile(
      join(dir, 'pipeline.yaml'),
      `version: 1\nname: synth-test\nsource: { file: { path: in.jsonl } }\nsteps:\n  - filter: { fn: ./fns.mjs#big }\n  - sink: { file: { path: ${out} } }\n`,
    );
    const p = await loadPipelineFile(join(dir, 'pipeline.yaml'));
    const r = await synth(p, { outDir: join(dir, 'dist'), bundleSdk: true });
    expect(r.bundleGzipBytes).toBeGreaterThan(1000);
    const handler = await bundledHandler(r.bundle);
    const values = [5, 12, 30, 9].map((amount, i) => ({ amount, i }));
    expect(await handler(kinesisEvent(values))).toEqual({ batchItemFailures: [] });
    const lines = (await readFile(out, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toEqual(values.filter((v) => v.amount >= 10));
    expect(JSON.parse(await readFile(r.template, 'utf8'))).toEqual(r.templateBody);
  });

  it('the default bundle (SDK from the runtime, schema builder and unused packages left out) runs a CEL pipeline with enrich and a window into Kinesis', async () => {
    // Inside the repository: the SDK left out of the bundle resolves from its node_modules, as
    // the Lambda runtime provides it.
    const root = join(import.meta.dirname, '..', '..', '..', '.tributary');
    await mkdir(root, { recursive: true });
    const dir = await mkdtemp(join(root, 'synth-'));
    const kinesis = await startKinesalite();
    const client = kinesisClient(kinesis.endpoint);
    try {
      await createStream(client, 'totals');
      await writeFile(
        join(dir, 'tiers.json'),
        JSON.stringify({ u0: { tier: 'gold' }, u1: { tier: 'silver' }, u2: { tier: 'gold' } }),
      );
      // Named relative to the pipeline file, as users write it.
      await writeFile(
        join(dir, 'pipeline.yaml'),
        `version: 1
name: synth-window
source: { file: { path: in.jsonl } }
eventTime: event.ts
steps:
  - filter: event.type == "click"
  - enrich: { lookup: { static: { path: tiers.json } }, key: event.user, as: info }
  - map: { user: event.user, tier: event.info.tier, amount: event.amount, ts: event.ts }
  - window: { key: event.tier, tumbling: 1m, aggregate: { n: count(), total: sum(event.amount) }, state: { memory: { volatile: true } } }
  - sink: { kinesis: { stream: totals, endpoint: ${JSON.stringify(kinesis.endpoint)}, partitionKey: event.key } }
`,
      );
      const p = await loadPipelineFile(join(dir, 'pipeline.yaml'));
      const r = await synth(p, { outDir: join(dir, 'dist') });
      // The lookup table travels with the bundle: the original is gone when the function runs.
      expect(r.files.map((f) => f.slice(join(dir, 'dist').length + 1))).toEqual(['files/0-tiers.json']);
      await rm(join(dir, 'tiers.json'));
      const code = await readFile(r.bundle, 'utf8');
      // The SDK is required from the runtime, not bundled; typebox's builder is not in the file.
      expect(code).toContain('"@aws-sdk/client-kinesis"');
      expect(code).not.toContain('TypeBoxError');
      // The sink does not aggregate: its KPL encoder is a stub.
      expect(code).toContain('"a kinesis sink with aggregate"');
      // Minute 0 and minute 1 of events, then one event at minute 3 closes both windows.
      const base = 1_800_000_000_000;
      const events = Array.from({ length: 120 }, (_, i) => ({
        type: i % 5 === 0 ? 'view' : 'click',
        user: `u${i % 3}`,
        amount: (i % 7) + 0.5,
        ts: base + i * 1000,
      }));
      events.push({ type: 'click', user: 'u0', amount: 1, ts: base + 180_000 });
      const handler = await bundledHandler(r.bundle);
      expect(await handler(kinesisEvent(events))).toEqual({ batchItemFailures: [] });
      // Oracle: the closed windows recomputed from the input.
      const tierOf: Record<string, string> = { u0: 'gold', u1: 'silver', u2: 'gold' };
      const expected = new Map<string, { key: string; windowStart: number; n: number; total: number }>();
      for (const e of events) {
        const start = e.ts - (e.ts % 60_000);
        if (e.type !== 'click' || start >= base + 180_000 - (base % 60_000)) continue;
        const key = tierOf[e.user] as string;
        const w = expected.get(`${key}|${start}`) ?? { key, windowStart: start, n: 0, total: 0 };
        w.n++;
        w.total += e.amount;
        expected.set(`${key}|${start}`, w);
      }
      const windows = (await streamData(client, 'totals')).map((data) => JSON.parse(data));
      const norm = (ws: { key: string; windowStart: number; n: number; total: number }[]) =>
        ws
          .map((w) => ({ key: w.key, windowStart: w.windowStart, n: w.n, total: w.total }))
          .sort((a, b) => a.windowStart - b.windowStart || a.key.localeCompare(b.key));
      expect(windows.length).toBeGreaterThan(0);
      expect(norm(windows)).toEqual(norm([...expected.values()]));
    } finally {
      client.destroy();
      await kinesis.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a bundle with window state in Redis carries the shared-store operators and counts sessions exactly, once per redelivery', async () => {
    const root = join(import.meta.dirname, '..', '..', '..', '.tributary');
    await mkdir(root, { recursive: true });
    const dir = await mkdtemp(join(root, 'synth-shared-'));
    const redis = await startRedis();
    try {
      const out = join(dir, 'sessions.jsonl');
      await writeFile(
        join(dir, 'pipeline.yaml'),
        `version: 1
name: synth-sessions
source: { file: { path: in.jsonl } }
eventTime: event.ts
steps:
  - window: { key: event.user, session: { gap: 30s }, aggregate: { n: count() }, state: { redis: { url: ${JSON.stringify(redis.url)} } } }
  - sink: { file: { path: ${JSON.stringify(out)} } }
`,
      );
      const r = await synth(await loadPipelineFile(join(dir, 'pipeline.yaml')), { outDir: join(dir, 'dist') });
      const handler = await bundledHandler(r.bundle);
      const base = 1_800_000_000_000;
      // Per user: a session of 5 events 10 s apart, then one event 10 minutes later closes it.
      const events = [0, 1, 2].flatMap((u) => [
        ...Array.from({ length: 5 }, (_, i) => ({ user: `u${u}`, ts: base + i * 10_000 })),
      ]);
      events.push({ user: 'u0', ts: base + 600_000 });
      expect(await handler(kinesisEvent(events))).toEqual({ batchItemFailures: [] });
      expect(await handler(kinesisEvent(events))).toEqual({ batchItemFailures: [] }); // a redelivery
      const sessions = (await readFile(out, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { key: string; windowStart: number; n: number });
      expect(sessions.map((w) => [w.key, w.windowStart, w.n]).sort()).toEqual([
        ['u0', base, 5],
        ['u1', base, 5],
        ['u2', base, 5],
      ]);
    } finally {
      await redis.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a bundle carries the memory window operators of its window kinds only, and none of the components' docs", async () => {
    const root = join(import.meta.dirname, '..', '..', '..', '.tributary');
    await mkdir(root, { recursive: true });
    const dir = await mkdtemp(join(root, 'synth-kinds-'));
    try {
      const out = join(dir, 'sessions.jsonl');
      const yaml = (filter: string, window: string, sink: string) => `version: 1
name: synth-kinds
description: sessions per user, from the docs test
source: { file: { path: in.jsonl } }
eventTime: event.ts
steps:
  - filter: ${JSON.stringify(filter)}
  - window: { key: event.user, ${window}, aggregate: { n: count() }, state: { memory: { volatile: true } } }
  - sink: ${sink}
`;
      // The partition key is the user: one operator per shard (PerShardWindows) runs the sessions;
      // the filter needs RE2.
      await writeFile(
        join(dir, 'sessions.yaml'),
        yaml(
          'event.user.matches("^u[0-9]+$")',
          'session: { gap: 30s }, keyIsPartitionKey: true',
          `{ file: { path: ${JSON.stringify(out)} } }`,
        ),
      );
      await writeFile(
        join(dir, 'tumbling.yaml'),
        yaml(
          'event.user != ""',
          'tumbling: 1m',
          '{ kinesis: { stream: out, partitionKey: event.key, aggregate: true } }',
        ),
      );
      const sessions = await synth(await loadPipelineFile(join(dir, 'sessions.yaml')), {
        outDir: join(dir, 'dist-sessions'),
      });
      const tumbling = await synth(await loadPipelineFile(join(dir, 'tumbling.yaml')), {
        outDir: join(dir, 'dist-tumbling'),
      });
      const [sessionCode, tumblingCode] = await Promise.all([
        readFile(sessions.bundle, 'utf8'),
        readFile(tumbling.bundle, 'utf8'),
      ]);
      // A module left out is a stub naming what would need it.
      const leftOut = (code: string) =>
        [
          'a tumbling or hopping window in memory',
          'a session or sliding window in memory',
          'a window with keyIsPartitionKey',
          'an expression using matches',
          'a kinesis sink with aggregate',
          'a DynamoDB Streams event source',
          'a file sink',
        ].filter((neededBy) => code.includes(JSON.stringify(neededBy)));
      // (No Kinesis sink: no KPL encoder, nor its stub.)
      expect(leftOut(sessionCode)).toEqual([
        'a tumbling or hopping window in memory',
        'a DynamoDB Streams event source',
      ]);
      expect(leftOut(tumblingCode)).toEqual([
        'a session or sliding window in memory',
        'a window with keyIsPartitionKey',
        'an expression using matches',
        'a DynamoDB Streams event source',
        'a file sink',
      ]);
      // The file sink's output locks and checks are in the bundle that has one only.
      expect(sessionCode).toContain('each output must be a file of its own');
      expect(tumblingCode).not.toContain('each output must be a file of its own');
      for (const code of [sessionCode, tumblingCode]) {
        // The window step's description and the memory store's option description are blanked;
        // the pipeline's own description (its spec, inline) is kept.
        expect(code).not.toContain('Aggregates records per key over event-time windows');
        expect(code).not.toContain('accept that state is lost with the process');
        expect(code).toContain('sessions per user, from the docs test');
        // The spec was checked for memory window state at synth: the bundle does not check it again.
        expect(code).not.toContain('would be lost whenever a Lambda container ends');
      }
      // The session bundle runs its sessions (oracle: 5 events 10 s apart per user, one session each).
      const handler = await bundledHandler(sessions.bundle);
      const base = 1_800_000_000_000;
      const events = [0, 1, 2].flatMap((u) =>
        Array.from({ length: 5 }, (_, i) => ({ user: `u${u}`, ts: base + i * 10_000 })),
      );
      events.push({ user: 'u0', ts: base + 600_000 });
      expect(await handler(kinesisEvent(events))).toEqual({ batchItemFailures: [] });
      const got = (await readFile(out, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { key: string; windowStart: number; windowEnd: number; n: number });
      expect(got.map((w) => [w.key, w.windowStart, w.windowEnd, w.n]).sort()).toEqual(
        ['u0', 'u1', 'u2'].map((u) => [u, base, base + 40_000 + 30_000, 5]),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a bundle whose expressions use no optional values leaves out CEL's optional functions (one calling no macro, its macros), and computes what the unbundled pipeline does; a Kinesis bundle leaves out the DynamoDB Streams describer", async () => {
    const root = join(import.meta.dirname, '..', '..', '..', '.tributary');
    await mkdir(root, { recursive: true });
    const dir = await mkdtemp(join(root, 'synth-cel-'));
    try {
      const yaml = (out: string, map: string) => `version: 1
name: synth-cel
source: { file: { path: in.jsonl } }
eventTime: event.ts
steps:
  - filter: 'event.type == "click" && size(event.user) > 1 && event.amount in [1, 2, 3, 5, 8]'
  - map: ${map}
  - window: { key: event.user, tumbling: 1m, aggregate: { n: count(), total: sum(event.amount) }, state: { memory: { volatile: true } } }
  - sink: { file: { path: ${JSON.stringify(out)} } }
`;
      const plain = '{ user: event.user + "-" + string(event.amount), amount: event.amount * 2, ts: event.ts }';
      // Optional syntax, and a macro (has).
      const optional =
        '{ user: event.user + "-" + event.?tag.orValue("none") + string(has(event.tag)), amount: event.amount * 2, ts: event.ts }';
      const base = 1_800_000_000_000;
      const events = Array.from({ length: 40 }, (_, i) => ({
        type: i % 5 === 0 ? 'view' : 'click',
        user: `u${i % 3}`,
        amount: i % 7,
        ts: base + i * 5_000,
        ...(i % 4 === 0 ? { tag: 'a' } : {}),
      }));
      events.push({ type: 'click', user: 'u0', amount: 1, ts: base + 900_000 });
      const bundleCode: Record<string, string> = {};
      const handlers: Record<string, (event: unknown) => Promise<unknown>> = {};
      for (const [name, map] of Object.entries({ plain, optional })) {
        const [bundled, unbundled] = ['bundled', 'unbundled'].map((w) => join(dir, `${name}-${w}.jsonl`)) as [
          string,
          string,
        ];
        await writeFile(join(dir, `${name}.yaml`), yaml(bundled, map));
        await writeFile(join(dir, `${name}-unbundled.yaml`), yaml(unbundled, map));
        const result = await synth(await loadPipelineFile(join(dir, `${name}.yaml`)), {
          outDir: join(dir, `dist-${name}`),
        });
        bundleCode[name] = await readFile(result.bundle, 'utf8');
        const handler = await bundledHandler(result.bundle);
        handlers[name] = handler;
        const reference = createHandler(await loadPipelineFile(join(dir, `${name}-unbundled.yaml`)));
        expect(await handler(kinesisEvent(events))).toEqual({ batchItemFailures: [] });
        expect(await reference(kinesisEvent(events))).toEqual({ batchItemFailures: [] });
        const [got, want] = await Promise.all([readFile(bundled, 'utf8'), readFile(unbundled, 'utf8')]);
        expect(got.trim().split('\n').length).toBeGreaterThan(3);
        expect(got).toEqual(want);
      }
      // Optional syntax in the optional pipeline's map: a tag or "none".
      const optionalOut = await readFile(join(dir, 'optional-bundled.jsonl'), 'utf8');
      expect(optionalOut.includes('-nonefalse"')).toBe(true);
      expect(optionalOut.includes('-atrue"')).toBe(true);
      const neededBy = JSON.stringify('an expression using optional values (optional.of, ?., orValue)');
      expect(bundleCode.plain).toContain(neededBy);
      expect(bundleCode.plain).not.toContain('must be optional');
      expect(bundleCode.optional).not.toContain(neededBy);
      expect(bundleCode.optional).toContain('must be optional');
      // Likewise CEL's macros: left out of the plain bundle only.
      const macrosNeededBy = JSON.stringify(
        'an expression using a CEL macro (has, all, exists, exists_one, map, filter, cel.bind)',
      );
      expect(bundleCode.plain).toContain(macrosNeededBy);
      expect(bundleCode.plain).not.toContain('invalid variable argument');
      expect(bundleCode.optional).not.toContain(macrosNeededBy);
      expect(bundleCode.optional).toContain('invalid variable argument');
      // The template's event source is Kinesis: the bundle does not describe DynamoDB streams.
      // An event of DynamoDB Streams (a misconfigured trigger) is logged and dead-lettered, saying
      // what was left out, and the rest of the batch goes on.
      expect(bundleCode.plain).not.toContain('DescribeStreamCommand');
      let logged = '';
      // (The dead-letter output, stderr, waits for each write's callback.)
      const capture = (s: string | Uint8Array, ...rest: unknown[]) => {
        logged += String(s);
        const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
        done?.();
        return true;
      };
      const out = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
      const err = vi.spyOn(process.stderr, 'write').mockImplementation(capture);
      try {
        const arn = 'arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000';
        await (handlers.plain as (event: unknown) => Promise<unknown>)({
          Records: [
            dynamoDbEventRecord({
              arn,
              eventID: 'ev-1',
              dynamodb: { SequenceNumber: '100', Keys: { id: { S: 'a' } }, NewImage: { id: { S: 'a' } } },
            }),
          ],
        });
      } finally {
        out.mockRestore();
        err.mockRestore();
      }
      expect(logged).toContain(
        'dynamoDbStreamDescriber is left out of this bundle (tributary synth): only a DynamoDB Streams event source needs it',
      );
      expect(logged).toContain(
        'imageValue is left out of this bundle (tributary synth): only a DynamoDB Streams event source needs it',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a bundle registers exactly the core components its pipeline names, and runs every step kind', async () => {
    const root = join(import.meta.dirname, '..', '..', '..', '.tributary');
    await mkdir(root, { recursive: true });
    const dir = await mkdtemp(join(root, 'synth-'));
    try {
      await writeFile(join(dir, 'prices.json'), JSON.stringify({ a: { price: 2 }, b: { price: 5 } }));
      const big = join(dir, 'big.jsonl');
      const totals = join(dir, 'totals.jsonl');
      const dead = join(dir, 'dead.jsonl');
      await writeFile(
        join(dir, 'pipeline.yaml'),
        `version: 1
name: synth-all
source: { file: { path: in.jsonl } }
eventTime: event.ts
deadLetter: { file: { path: ${JSON.stringify(dead)} } }
steps:
  - filter: event.n > 0
  - keyBy: event.user
  - flatMap: 'event.items.map(i, {"user": event.user, "sku": i.sku, "qty": i.qty, "ts": event.ts})'
  - enrich: { lookup: { static: { path: prices.json } }, key: event.sku, as: p, onMissing: dead-letter }
  - branch:
      routes:
        - when: event.qty > 2
          steps:
            - map: { user: event.user, amount: event.qty * event.p.price }
            - sink: { file: { path: ${JSON.stringify(big)} } }
  - window: { key: event.user, tumbling: 1m, aggregate: { qty: sum(event.qty) }, state: { memory: { volatile: true } } }
  - sink: { file: { path: ${JSON.stringify(totals)} } }
`,
      );
      const p = await loadPipelineFile(join(dir, 'pipeline.yaml'));
      const r = await synth(p, { outDir: join(dir, 'dist') });
      const base = 1_800_000_000_000;
      const events = Array.from({ length: 60 }, (_, i) => ({
        user: `u${i % 4}`,
        n: i % 6,
        ts: base + i * 1000,
        items: [
          { sku: i % 2 ? 'a' : 'b', qty: (i % 5) + 1 },
          { sku: i % 7 ? 'a' : 'zz', qty: 1 },
        ],
      }));
      // Ten minutes later: closes the windows above (its own stays open).
      const last = base + 600_000;
      events.push({ user: 'u0', n: 1, ts: last, items: [{ sku: 'a', qty: 1 }] });
      const handler = await bundledHandler(r.bundle);
      expect(await handler(kinesisEvent(events))).toEqual({ batchItemFailures: [] });
      const lines = async (f: string) =>
        (await readFile(f, 'utf8').catch(() => ''))
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l));
      // Oracle, recomputed from the input.
      const price: Record<string, number> = { a: 2, b: 5 };
      const items = events
        .filter((e) => e.n > 0)
        .flatMap((e) => e.items.map((i) => ({ ...i, user: e.user, ts: e.ts })));
      const known = items.filter((i) => price[i.sku] !== undefined);
      expect((await lines(big)).sort((x, y) => x.user.localeCompare(y.user) || x.amount - y.amount)).toEqual(
        known
          .filter((i) => i.qty > 2)
          .map((i) => ({ user: i.user, amount: i.qty * (price[i.sku] as number) }))
          .sort((x, y) => x.user.localeCompare(y.user) || x.amount - y.amount),
      );
      expect((await lines(dead)).length).toBe(items.length - known.length);
      const want = new Map<string, number>();
      for (const i of known.filter((k) => k.qty <= 2 && k.ts < last)) {
        const id = `${i.user}|${i.ts - (i.ts % 60_000)}`;
        want.set(id, (want.get(id) ?? 0) + i.qty);
      }
      const got = new Map((await lines(totals)).map((w) => [`${w.key}|${w.windowStart}`, w.qty]));
      expect(got).toEqual(want);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** The central directory of a zip: each entry's name and Unix mode (from its external attributes). */
function zipModes(zip: Uint8Array): Record<string, number> {
  const b = Buffer.from(zip);
  const out: Record<string, number> = {};
  // End of central directory: its offset at +16, entries at +10.
  const end = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  let at = b.readUInt32LE(end + 16);
  for (let i = 0; i < b.readUInt16LE(end + 10); i++) {
    expect(b.readUInt32LE(at)).toBe(0x02014b50);
    const nameLength = b.readUInt16LE(at + 28);
    const extra = b.readUInt16LE(at + 30);
    const comment = b.readUInt16LE(at + 32);
    out[b.subarray(at + 46, at + 46 + nameLength).toString()] = b.readUInt32LE(at + 38) >>> 16;
    at += 46 + nameLength + extra + comment;
  }
  return out;
}

/** Runs `fn` with standard output captured; returns what was written (each write's callback called). */
async function captureStdout(fn: () => Promise<unknown>): Promise<string> {
  let text = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array, ...rest: unknown[]) => {
    text += String(s);
    (rest.find((r) => typeof r === 'function') as (() => void) | undefined)?.();
    return true;
  });
  try {
    await fn();
  } finally {
    spy.mockRestore();
  }
  return text;
}

describe('tributary synth for a stack', () => {
  it("a bundle run with the template's TRIBUTARY_STATE_TABLE_<i> keeps window state in the stack's table, not the one the pipeline file names (dynalite)", async () => {
    const root = join(import.meta.dirname, '..', '..', '..', '.tributary');
    await mkdir(root, { recursive: true });
    const dir = await mkdtemp(join(root, 'synth-tables-'));
    const dynamo = await startDynalite();
    const client = dynamoDbClient(dynamo.endpoint);
    try {
      const out = join(dir, 'windows.jsonl');
      await writeFile(
        join(dir, 'pipeline.yaml'),
        `version: 1
name: synth-tables
source: { file: { path: in.jsonl } }
eventTime: event.ts
steps:
  - window: { key: event.user, tumbling: 1m, aggregate: { n: count(), total: sum(event.amount) }, state: { dynamodb: { table: yaml-state } } }
  - sink: { file: { path: ${JSON.stringify(out)} } }
`,
      );
      const r = await synth(await loadPipelineFile(join(dir, 'pipeline.yaml')), { outDir: join(dir, 'dist') });
      const env = (r.templateBody.Resources as { Function: { Properties: { Environment: { Variables: object } } } })
        .Function.Properties.Environment.Variables;
      expect(env).toMatchObject({ TRIBUTARY_STATE_TABLE_0: { Ref: 'StateTable0' } });
      // The stack's table (a name CloudFormation made up); the pipeline file's does not exist.
      const deployed = 'mystack-StateTable0-1A2B3C4D5E6F';
      await createStateTables(dynamo.endpoint, deployed);
      vi.stubEnv('TRIBUTARY_STATE_TABLE_0', deployed);
      vi.stubEnv('AWS_ENDPOINT_URL_DYNAMODB', dynamo.endpoint);
      vi.stubEnv('AWS_REGION', 'us-east-1');
      let handler: (event: unknown) => Promise<unknown>;
      try {
        // The entry reads the variables when the bundle is loaded, as at a cold start.
        handler = await bundledHandler(r.bundle);
        const base = 1_800_000_000_000;
        const events = Array.from({ length: 30 }, (_, i) => ({ user: `u${i % 3}`, amount: i, ts: base + i * 3000 }));
        events.push({ user: 'u0', amount: 0, ts: base + 300_000 });
        expect(await handler(kinesisEvent(events))).toEqual({ batchItemFailures: [] });
        // Oracle: the closed windows recomputed from the input.
        const want = new Map<string, { n: number; total: number }>();
        for (const e of events.slice(0, -1)) {
          const k = `${e.user}|${e.ts - (e.ts % 60_000)}`;
          const w = want.get(k) ?? { n: 0, total: 0 };
          w.n++;
          w.total += e.amount;
          want.set(k, w);
        }
        const got = (await readFile(out, 'utf8'))
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { key: string; windowStart: number; n: number; total: number });
        expect(new Map(got.map((w) => [`${w.key}|${w.windowStart}`, { n: w.n, total: w.total }]))).toEqual(want);
      } finally {
        vi.unstubAllEnvs();
      }
      const items = await client.send(new ScanCommand({ TableName: deployed }));
      expect(items.Count ?? 0).toBeGreaterThan(0);
      const tables = await client.send(new ListTablesCommand({}));
      expect(tables.TableNames).toEqual([deployed]);
    } finally {
      client.destroy();
      await dynamo.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('synth --zip writes function.zip (the bundle, its source map, the files it reads; 0644, the same bytes each time), which the template names as its code and which runs as unzipped', async () => {
    const root = join(import.meta.dirname, '..', '..', '..', '.tributary');
    await mkdir(root, { recursive: true });
    const dir = await mkdtemp(join(root, 'synth-zip-'));
    try {
      await writeFile(join(dir, 'tiers.json'), JSON.stringify({ u0: { tier: 'gold' }, u1: { tier: 'silver' } }));
      await writeFile(
        join(dir, 'pipeline.yaml'),
        `version: 1
name: synth-zip
source: { kinesis: { stream: clicks } }
steps:
  - enrich: { lookup: { static: { path: tiers.json } }, key: event.user, as: info }
  - map: { user: event.user, tier: event.info.tier }
  - sink: { stdout: {} }
`,
      );
      const outs = [join(dir, 'a'), join(dir, 'b')];
      for (const out of outs) {
        const io = errorOutput();
        expect(
          await main(['synth', join(dir, 'pipeline.yaml'), '--runtime', 'lambda', '--out', out, '--zip'], io),
        ).toBe(0);
        expect(io.text()).toBe('');
      }
      const [zipA, zipB] = await Promise.all(outs.map((o) => readFile(join(o, 'function.zip'))));
      expect(Buffer.compare(zipA as Buffer, zipB as Buffer)).toBe(0);
      const entries = unzipSync(new Uint8Array(zipA as Buffer));
      expect(Object.keys(entries).sort()).toEqual(['files/0-tiers.json', 'index.mjs', 'index.mjs.map']);
      for (const [name, bytes] of Object.entries(entries))
        expect(Buffer.compare(Buffer.from(bytes), await readFile(join(outs[0] as string, name))), name).toBe(0);
      expect(zipModes(zipA as Buffer)).toEqual({
        'files/0-tiers.json': 0o100644,
        'index.mjs': 0o100644,
        'index.mjs.map': 0o100644,
      });
      const t = JSON.parse(await readFile(join(outs[0] as string, 'template.json'), 'utf8'));
      expect(t.Resources.Function.Properties.Code).toBe('function.zip');
      expect(t.Parameters.CodeBucket).toBeUndefined();
      expect(validate(t)).toEqual([]);
      // Without --zip: no zip, the code from parameters.
      const plain = join(dir, 'plain');
      expect(
        await main(['synth', join(dir, 'pipeline.yaml'), '--runtime', 'lambda', '--out', plain], errorOutput()),
      ).toBe(0);
      await expect(readFile(join(plain, 'function.zip'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(
        JSON.parse(await readFile(join(plain, 'template.json'), 'utf8')).Resources.Function.Properties.Code,
      ).toEqual({
        S3Bucket: { Ref: 'CodeBucket' },
        S3Key: { Ref: 'CodeKey' },
      });
      // Unzipped elsewhere (the lookup table's original gone), the package runs on its own.
      await rm(join(dir, 'tiers.json'));
      const unzipped = join(dir, 'unzipped');
      for (const [name, bytes] of Object.entries(entries)) {
        await mkdir(dirname(join(unzipped, name)), { recursive: true });
        await writeFile(join(unzipped, name), bytes);
      }
      const handler = await bundledHandler(join(unzipped, 'index.mjs'));
      const values = [{ user: 'u0' }, { user: 'u1' }, { user: 'u0' }];
      const text = await captureStdout(async () => {
        expect(await handler(kinesisEvent(values))).toEqual({ batchItemFailures: [] });
      });
      const written = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((l) => !l._aws);
      expect(written).toEqual(values.map((v) => ({ user: v.user, tier: v.user === 'u0' ? 'gold' : 'silver' })));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a dynamodbStream pipeline's bundle decodes DynamoDB Streams records (the decoding left out of a Kinesis bundle is in), and its template maps the table's stream", async () => {
    const root = join(import.meta.dirname, '..', '..', '..', '.tributary');
    await mkdir(root, { recursive: true });
    const dir = await mkdtemp(join(root, 'synth-ddb-'));
    try {
      const out = join(dir, 'changes.jsonl');
      await writeFile(
        join(dir, 'pipeline.yaml'),
        `version: 1
name: synth-ddb
source: { dynamodbStream: { table: users } }
steps:
  - map: { id: event.keys.id, name: event.newImage.name, kind: event.eventName }
  - sink: { file: { path: ${JSON.stringify(out)} } }
`,
      );
      const r = await synth(await loadPipelineFile(join(dir, 'pipeline.yaml')), { outDir: join(dir, 'dist') });
      const code = await readFile(r.bundle, 'utf8');
      expect(code).not.toContain(JSON.stringify('a DynamoDB Streams event source'));
      const mapping = (r.templateBody.Resources as { EventSourceMapping: { Properties: Record<string, unknown> } })
        .EventSourceMapping.Properties;
      expect(mapping.EventSourceArn).toEqual({ Ref: 'TableStreamArn' });
      const handler = await bundledHandler(r.bundle);
      const users = [
        { id: 'a', name: 'Ada' },
        { id: 'b', name: 'Bo' },
        { id: 'c', name: 'Cy' },
      ];
      const records = users.map((u, i) =>
        dynamoDbEventRecord({
          // No ARN: the handler maps no shard (there is no AWS account here to describe the stream).
          arn: '',
          eventID: `ev-${i}`,
          dynamodb: {
            SequenceNumber: String(100 + i),
            Keys: { id: { S: u.id } },
            NewImage: { id: { S: u.id }, name: { S: u.name } },
          },
        }),
      );
      expect(await handler({ Records: records })).toEqual({ batchItemFailures: [] });
      const got = (await readFile(out, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(got).toEqual(users.map((u) => ({ id: u.id, name: u.name, kind: 'INSERT' })));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
