import { describe, expect, it } from 'vitest';
import { createLogger, entryLog, parseLogLevel } from '../src/log.js';
import { createStatusLine, formatStatus } from '../src/status.js';

/** A stream that keeps what is written, a terminal or not. */
function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  return { isTTY, chunks, write: (s: string) => chunks.push(s), text: () => chunks.join('') };
}

const at = new Date('2026-12-02T15:04:05.123Z');

describe('JSON log', () => {
  it('writes one JSON object per line: time, level, msg, workerId, shardId when a shard is named, fields when any', () => {
    const out = fakeStream(false);
    const log = createLogger({ workerId: 'w-1', stream: out, now: () => at, env: {} });
    log.info('worker started', { app: 'orders' });
    log.forShard('shardId-000000000001').warn('lease lost', { why: 'taken' });
    log.error('no fields', {});
    const lines = out.text().split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      {
        time: '2026-12-02T15:04:05.123Z',
        level: 'info',
        msg: 'worker started',
        workerId: 'w-1',
        fields: { app: 'orders' },
      },
      {
        time: '2026-12-02T15:04:05.123Z',
        level: 'warn',
        msg: 'lease lost',
        workerId: 'w-1',
        shardId: 'shardId-000000000001',
        fields: { why: 'taken' },
      },
      { time: '2026-12-02T15:04:05.123Z', level: 'error', msg: 'no fields', workerId: 'w-1' },
    ]);
  });

  it("takes a shardId among the fields as the line's shard; entryLog writes entry objects and text through the log", () => {
    const out = fakeStream(false);
    const log = createLogger({ workerId: 'w-2', stream: out, now: () => at, env: {} });
    log.info('lease lost: the shard stops', { shardId: 'shardId-000000000002', why: 'taken' });
    const entries = entryLog(log);
    entries({ level: 'warn', msg: 'retrying GetRecords', shardId: 'shardId-000000000003', attempt: 2 });
    entries({ level: 'loud', message: 'odd level' });
    entries('plain text');
    expect(out.chunks.map((c) => JSON.parse(c))).toEqual([
      {
        time: at.toISOString(),
        level: 'info',
        msg: 'lease lost: the shard stops',
        workerId: 'w-2',
        shardId: 'shardId-000000000002',
        fields: { why: 'taken' },
      },
      {
        time: at.toISOString(),
        level: 'warn',
        msg: 'retrying GetRecords',
        workerId: 'w-2',
        shardId: 'shardId-000000000003',
        fields: { attempt: 2 },
      },
      { time: at.toISOString(), level: 'info', msg: 'odd level', workerId: 'w-2', fields: { level: 'loud' } },
      { time: at.toISOString(), level: 'info', msg: 'plain text', workerId: 'w-2' },
    ]);
  });

  it('keeps a line one line and never throws: newlines escaped, errors as name/message/code, bigints as strings, a cycle marked', () => {
    const out = fakeStream(false);
    const log = createLogger({ workerId: 'w', stream: out, now: () => at, env: {} });
    const err = Object.assign(new Error('line 1\nline 2'), { code: 'ECONNRESET' });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    log.error('call failed', { err, n: 12345678901234567890n, cyclic });
    expect(out.chunks).toHaveLength(1);
    expect(out.chunks[0]?.split('\n')).toHaveLength(2);
    expect(JSON.parse(out.chunks[0] as string).fields).toEqual({
      err: { name: 'Error', message: 'line 1\nline 2', code: 'ECONNRESET' },
      n: '12345678901234567890',
      cyclic: { a: 1, self: '[cycle]' },
    });
  });

  it('writes the levels at or above TRIBUTARY_LOG_LEVEL (default info); silent writes nothing', () => {
    const levels = ['debug', 'info', 'warn', 'error'] as const;
    const written = (env: NodeJS.ProcessEnv) => {
      const out = fakeStream(false);
      const log = createLogger({ workerId: 'w', stream: out, env });
      for (const l of levels) log[l](l);
      return out.chunks.map((c) => JSON.parse(c).level);
    };
    expect(written({})).toEqual(['info', 'warn', 'error']);
    expect(written({ TRIBUTARY_LOG_LEVEL: 'debug' })).toEqual(['debug', 'info', 'warn', 'error']);
    expect(written({ TRIBUTARY_LOG_LEVEL: 'WARN' })).toEqual(['warn', 'error']);
    expect(written({ TRIBUTARY_LOG_LEVEL: 'error' })).toEqual(['error']);
    expect(written({ TRIBUTARY_LOG_LEVEL: 'silent' })).toEqual([]);
    expect(createLogger({ workerId: 'w', env: { TRIBUTARY_LOG_LEVEL: 'warn' } }).enabled('info')).toBe(false);
  });

  it('refuses a TRIBUTARY_LOG_LEVEL that names no level, saying which are', () => {
    const message = 'Expected `TRIBUTARY_LOG_LEVEL` to be debug, info, warn, error or silent, got "verbose"';
    expect(parseLogLevel('verbose')).toBe(message);
    expect(() => createLogger({ workerId: 'w', env: { TRIBUTARY_LOG_LEVEL: 'verbose' } })).toThrow(message);
  });
});

describe('status line', () => {
  it('on a non-TTY writes nothing, ever (and log lines pass through unchanged)', () => {
    const out = fakeStream(false);
    let t = 0;
    const status = createStatusLine({
      stream: out,
      label: 'p w-1',
      sample: () => ({ shards: 2, recordsIn: t }),
      now: () => t,
    });
    expect(status.active).toBe(false);
    status.start();
    for (t = 0; t < 10_000; t += 500) expect(status.update()).toBe(false);
    status.logStream.write('{"msg":"x"}\n');
    status.stop();
    expect(out.chunks).toEqual(['{"msg":"x"}\n']);
  });

  it('on a TTY rewrites one line in place at most once a second, with records/s from the change of the total', () => {
    const out = fakeStream(true);
    let t = 10_000;
    let recordsIn = 0;
    let age: number | undefined;
    const status = createStatusLine({
      stream: out,
      label: 'orders w-1',
      sample: () => ({ shards: 1, recordsIn, ...(age === undefined ? {} : { maxIteratorAgeMs: age }) }),
      now: () => t,
    });
    expect(status.update()).toBe(true);
    expect(out.chunks).toEqual(['\r\x1b[2Korders w-1: 1 shard, … records/s, not read yet']);
    // Virtual time: every 250 ms, 100 records; a redraw happens only once 1000 ms have passed.
    let draws = 1;
    for (let i = 1; i <= 12; i++) {
      t += 250;
      recordsIn += 100;
      age = i * 10;
      if (status.update()) draws++;
    }
    expect(draws).toBe(1 + 3);
    expect(out.chunks).toHaveLength(4);
    for (const c of out.chunks) {
      expect(c.startsWith('\r\x1b[2K')).toBe(true);
      expect(c).not.toContain('\n');
    }
    // 400 records in each 1000 ms: 400 records/s; the age is the sample's.
    expect(out.chunks[3]).toBe('\r\x1b[2Korders w-1: 1 shard, 400 records/s, 120 ms behind');
  });

  it('a log line clears the status, is written whole, and the status is drawn again after it; stop clears it', () => {
    const out = fakeStream(true);
    const status = createStatusLine({
      stream: out,
      label: 'p',
      sample: () => ({ shards: 4, recordsIn: 0, maxIteratorAgeMs: 65_000 }),
      now: () => 0,
    });
    status.update();
    status.logStream.write('{"msg":"lease taken"}\n');
    status.stop();
    expect(out.chunks).toEqual([
      '\r\x1b[2Kp: 4 shards, … records/s, 1.1 min behind',
      '\r\x1b[2K{"msg":"lease taken"}\np: 4 shards, … records/s, 1.1 min behind',
      '\r\x1b[2K',
    ]);
  });

  it('formats ages in ms, s, min and h', () => {
    const f = (ms: number) => formatStatus('x', { shards: 0, recordsIn: 0, maxIteratorAgeMs: ms }, 12.6);
    expect([f(0), f(999), f(1500), f(90_000), f(7_200_000)]).toEqual([
      'x: 0 shards, 13 records/s, 0 ms behind',
      'x: 0 shards, 13 records/s, 999 ms behind',
      'x: 0 shards, 13 records/s, 1.5 s behind',
      'x: 0 shards, 13 records/s, 1.5 min behind',
      'x: 0 shards, 13 records/s, 2.0 h behind',
    ]);
  });
});
