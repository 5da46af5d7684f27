// Redis over TLS with an AUTH token, as on ElastiCache with in-transit encryption: a real
// `redis-server` serving only TLS, with a certificate signed by a CA made here (openssl) and a
// password. The Redis state store and the Redis sink work over rediss:// given the CA and the
// token (from an environment variable, from Secrets Manager — a loopback server speaking its JSON
// 1.1 protocol, read once — or in the URL); a wrong token and a missing CA fail at once with an
// error saying so, never naming the token, instead of hanging or being retried as if transient.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { compile, type DeadLetterRecord, MemorySink, type Pipeline, parsePipelineYaml } from '@tributary/core';
import { envelope } from '@tributary/core/spi';
import { redisSink, redisSinkDefinition } from '@tributary/sinks';
import { redisState, redisStoreDefinition, StateStoreError } from '@tributary/state';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyReadFiles } from '../../cli/src/synth/entry.js';
import { byWindow, deliverInTurn, type Kind, type Rec, reference } from '../../core/test/windows/reference.js';
import { serveHttp } from '../../sinks/test/records.js';
import { windowPipelineYaml } from './backends.js';

const TOKEN = 'tls-test-token-7f3a9c';
const WRONG = 'not-the-token-1b2c';

interface TlsRedis {
  port: number;
  url: string;
  dir: string;
  /** The CA that signed the server's certificate (PEM file). */
  caFile: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** A CA and a server certificate for 127.0.0.1 and localhost, made with openssl in `dir`. */
function makeCertificates(dir: string) {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=tributary test CA',
  );
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  run(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  );
}

/** A redis-server serving TLS only (`--port 0`), requiring TOKEN, on a free loopback port. */
async function startTlsRedis(): Promise<TlsRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-redis-tls-'));
  makeCertificates(dir);
  const port = await freePort();
  const args = ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--dir', dir];
  args.push('--tls-cert-file', 'server.crt', '--tls-key-file', 'server.key', '--tls-ca-cert-file', 'ca.crt');
  args.push('--tls-auth-clients', 'no', '--requirepass', TOKEN, '--save', '', '--appendonly', 'no');
  const child = spawn('redis-server', args, { cwd: dir, stdio: 'ignore' });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`cannot start redis-server: ${err.message}`)));
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code} (built without TLS?)`)));
  });
  failed.catch(() => {});
  const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
  let up = false;
  for (let i = 0; i < 200 && !up; i++) {
    const probe = new Redis({
      host: '127.0.0.1',
      port,
      tls: { ca },
      password: TOKEN,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => {});
    try {
      await Promise.race([probe.connect(), failed]);
      up = (await probe.ping()) === 'PONG';
    } catch (err) {
      if (/cannot start|exited/.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 25));
    } finally {
      probe.disconnect();
    }
  }
  if (!up) throw new Error(`redis-server (TLS) did not start on port ${port}`);
  return {
    port,
    url: `rediss://127.0.0.1:${port}`,
    dir,
    caFile: join(dir, 'ca.crt'),
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((r) => {
          child.once('exit', () => r());
          child.kill('SIGKILL');
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A loopback Secrets Manager (JSON 1.1, `secretsmanager.GetSecretValue`) holding `secrets`;
 * records the reads; `throttle` reads from now on are refused with ThrottlingException.
 */
async function startSecretsManager(secrets: Record<string, string>) {
  const reads: string[] = [];
  const control = { throttle: 0 };
  const server = await serveHttp((req, body, res) => {
    const target = String(req.headers['x-amz-target']);
    const { SecretId } = JSON.parse(body) as { SecretId: string };
    reads.push(`${target} ${SecretId}`);
    const reply = (status: number, payload: unknown) =>
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify(payload));
    const value = secrets[SecretId];
    if (control.throttle > 0) {
      control.throttle--;
      return reply(400, { __type: 'ThrottlingException', message: 'Rate exceeded' });
    }
    if (target !== 'secretsmanager.GetSecretValue' || value === undefined) {
      return reply(400, {
        __type: 'ResourceNotFoundException',
        message: "Secrets Manager can't find the specified secret.",
      });
    }
    reply(200, {
      ARN: `arn:aws:secretsmanager:us-east-1:123456789012:secret:${SecretId}-AbCdEf`,
      Name: SecretId,
      SecretString: value,
    });
  });
  return { ...server, reads, control };
}

let redis: TlsRedis;
let secrets: Awaited<ReturnType<typeof startSecretsManager>>;
/** A plain client of the server, to look at what the store and sink wrote. */
let check: Redis;
beforeAll(async () => {
  redis = await startTlsRedis();
  secrets = await startSecretsManager({
    'redis/token': TOKEN,
    'redis/json': JSON.stringify({ username: 'default', password: TOKEN }),
  });
  check = new Redis(redis.url, { tls: { ca: readFileSync(redis.caFile, 'utf8') }, password: TOKEN });
  process.env.TRIBUTARY_TEST_REDIS_TOKEN = TOKEN;
  process.env.TRIBUTARY_TEST_WRONG_TOKEN = WRONG;
});
afterAll(async () => {
  check?.disconnect();
  await secrets?.close();
  await redis?.close();
});

/** Everything an error shows, its causes included, as a person or a log would see it. */
const shown = (err: unknown) => `${String(err)}\n${inspect(err, { depth: 10 })}`;

/** The error a promise rejects with. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

// ---- the state store ----------------------------------------------------------------------

/** Four shards of records, keys a–c, event times rising by shard-dependent steps. */
function shardsOf(count: number): Rec[][] {
  return Array.from({ length: 4 }, (_, s) =>
    Array.from({ length: count }, (_, i) => ({
      k: 'abc'[(i * (s + 1)) % 3] as string,
      t: 1000 + i * (7 + s),
      v: ((i * 13 + s * 5) % 19) - 9,
      shard: `s${s}`,
      seq: i + 1,
    })),
  );
}

/** A window pipeline with the given `state:` line, relative paths resolved in the server's folder. */
function pipelineOf(state: string, name: string, w: Kind): Pipeline {
  const parsed = parsePipelineYaml(windowPipelineYaml(name, w, 'final', state), join(redis.dir, 'p.yaml'));
  if (!parsed.spec) throw new Error(parsed.issues.map((i) => `${i.line}:${i.column}: ${i.message}`).join('\n'));
  return { spec: parsed.spec, bindings: new Map(), baseDir: redis.dir };
}

/** Runs the pipeline over four shards in batches of 5 and returns the windows and dead letters. */
async function runWindows(p: Pipeline) {
  const dead = new MemorySink<DeadLetterRecord>();
  const c = compile(p, { deadLetter: dead, collectTail: true });
  const out: Record<string, unknown>[] = [];
  const take = (r: { tail?: { value: unknown }[] }) => {
    for (const e of r.tail ?? []) out.push(e.value as Record<string, unknown>);
  };
  const shards = shardsOf(30);
  try {
    for (let s = 0; s < shards.length; s++) c.registerShard(`s${s}`);
    const batches = shards.map((rs) => Array.from({ length: 6 }, (_, b) => rs.slice(b * 5, b * 5 + 5)));
    await deliverInTurn(batches, async (batch) => take(await c.process(batch)));
    take(await c.flush());
  } finally {
    await c.close();
  }
  return { out: out.sort(byWindow), dead: dead.values, expected: reference(shards.flat(), TUMBLING) };
}

const TUMBLING: Kind = { kind: 'tumbling', size: 50 };
let runs = 0;
const fresh = () => `tls${process.pid}-${++runs}`;

describe('redis state store over TLS with an AUTH token', () => {
  it('rediss:// with the CA file (relative to the pipeline) and the token from an env var: windows equal the reference', async () => {
    const name = fresh();
    const state = `state: { redis: { url: '${redis.url}', tls: { ca: ca.crt }, authTokenEnv: TRIBUTARY_TEST_REDIS_TOKEN } }`;
    const { out, dead, expected } = await runWindows(pipelineOf(state, name, TUMBLING));
    expect(dead).toEqual([]);
    expect(out).toEqual(expected);
    expect(expected.length).toBeGreaterThan(10);
    // The state is on the TLS server, under the pipeline's namespace.
    expect((await check.keys(`*${name}*`)).length).toBeGreaterThan(0);
  });

  it('the token from Secrets Manager (text or JSON with username and password) is read once, and the CA may be PEM text', async () => {
    const ca = readFileSync(redis.caFile, 'utf8');
    for (const id of ['redis/token', 'redis/json']) {
      const before = secrets.reads.length;
      const store = redisState({
        url: redis.url,
        tls: { ca },
        authTokenSecret: id,
        secretsManager: { endpoint: secrets.url },
      });
      const ns = fresh();
      const ids = Array.from({ length: 5 }, (_, i) => `${ns}|0|50|${i}`);
      // Several calls, each a round trip: the secret is read before the first only.
      for (let round = 0; round < 3; round++) {
        await store.backend.write(ids.map((i) => ({ id: i, expected: round, body: `b${round}`, expiresAt: 0 })));
      }
      const read = await store.backend.read(ids);
      expect([...read.values()].map((v) => [v.version, v.body])).toEqual(ids.map(() => [3, 'b2']));
      expect(secrets.reads.slice(before)).toEqual([`secretsmanager.GetSecretValue ${id}`]);
      await store.backend.close();
    }
  });

  it('YAML with authTokenSecret: Secrets Manager found by the SDK variables (AWS_ENDPOINT_URL_SECRETS_MANAGER), as for an emulator', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.url,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    });
    try {
      const before = secrets.reads.length;
      const state = `state: { redis: { url: '${redis.url}', tls: { ca: ca.crt }, authTokenSecret: redis/json } }`;
      const { out, dead, expected } = await runWindows(pipelineOf(state, fresh(), TUMBLING));
      expect(dead).toEqual([]);
      expect(out).toEqual(expected);
      // One read for the whole run (24 batches and a flush).
      expect(secrets.reads.slice(before)).toEqual(['secretsmanager.GetSecretValue redis/json']);
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });

  it('a throttled secret read is retried; a missing secret fails the batch at once, naming it', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.url,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    });
    try {
      const before = secrets.reads.length;
      secrets.control.throttle = 2;
      const state = `state: { redis: { url: '${redis.url}', tls: { ca: ca.crt }, authTokenSecret: redis/token } }`;
      const { out, dead, expected } = await runWindows(pipelineOf(state, fresh(), TUMBLING));
      expect(dead).toEqual([]);
      expect(out).toEqual(expected);
      // Two refused reads, retried by the store, then the one that succeeded, kept for the run.
      expect(secrets.reads.slice(before)).toEqual(Array(3).fill('secretsmanager.GetSecretValue redis/token'));
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }

    const missing = redisState({
      url: redis.url,
      tls: { ca: redis.caFile },
      authTokenSecret: 'redis/missing',
      secretsManager: { endpoint: secrets.url },
    });
    const err = await rejection(missing.backend.read([`${fresh()}|0|1|0`]));
    expect(String(err)).toBe(
      "RedisConnectionError: authTokenSecret: cannot read secret redis/missing (ResourceNotFoundException: Secrets Manager can't find the specified secret.)",
    );
    await missing.backend.close();
  });

  it('synth carries a CA file into the function as its text: the bundled spec connects where the file is not', async () => {
    const state = `state: { redis: { url: '${redis.url}', tls: { ca: ca.crt }, authTokenEnv: TRIBUTARY_TEST_REDIS_TOKEN } }`;
    const p = pipelineOf(state, fresh(), TUMBLING);
    const out = mkdtempSync(join(tmpdir(), 'tributary-synth-ca-'));
    try {
      const { spec, files } = await copyReadFiles(p, out);
      expect(files).toEqual([]);
      type WindowStep = { window: { state: { redis: { tls: { ca: string } } } } };
      const caOf = (steps: unknown) => ((steps as WindowStep[])[0] as WindowStep).window.state.redis.tls.ca;
      expect(caOf(spec.steps)).toBe(readFileSync(redis.caFile, 'utf8'));
      // The pipeline's own spec is unchanged: the copy is the bundle's.
      expect(caOf(p.spec.steps)).toBe('ca.crt');
      const run = await runWindows({ spec, bindings: new Map(), baseDir: out });
      expect(run.dead).toEqual([]);
      expect(run.out).toEqual(run.expected);
      // A CA file that is not there stops synth, naming the option and the file.
      const missing = pipelineOf(state.replace('ca.crt', 'gone.crt'), fresh(), TUMBLING);
      await expect(copyReadFiles(missing, out)).rejects.toThrow(
        `/steps/0/window/state/tls/ca: cannot read the CA file ${join(redis.dir, 'gone.crt')}: ENOENT`,
      );
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('a token in the URL still works', async () => {
    const store = redisState({ url: `rediss://:${TOKEN}@127.0.0.1:${redis.port}`, tls: { ca: redis.caFile } });
    const ns = fresh();
    expect(await store.backend.write([{ id: `${ns}|0|1|0`, expected: 0, body: 'x', expiresAt: 0 }])).toEqual([true]);
    await store.backend.close();
  });

  it('a wrong token fails the batch at once with a StateStoreError saying so, never showing a token', async () => {
    const name = fresh();
    const state = `state: { redis: { url: '${redis.url}', tls: { ca: ca.crt }, authTokenEnv: TRIBUTARY_TEST_WRONG_TOKEN } }`;
    const err = await rejection(runWindows(pipelineOf(state, name, TUMBLING)));
    expect(err).toBeInstanceOf(StateStoreError);
    expect(String(err)).toMatch(
      /redis rediss:\/\/127\.0\.0\.1:\d+: authentication refused \(WRONGPASS invalid username-password pair[^)]*\): check the AUTH token/,
    );
    expect(shown(err)).not.toContain(WRONG);
    expect(shown(err)).not.toContain(TOKEN);
  });

  it('without the CA (certificates verified by default) a certificate error, not a hang or a max-retries message', async () => {
    const store = redisState({ url: redis.url, authTokenEnv: 'TRIBUTARY_TEST_REDIS_TOKEN' });
    const err = await rejection(store.backend.read([`${fresh()}|0|1|0`]));
    expect(String(err)).toMatch(
      /redis rediss:\/\/127\.0\.0\.1:\d+: the server's TLS certificate does not verify \(self[- ]signed certificate in certificate chain\): give its CA as `tls\.ca`/,
    );
    expect(String(err)).not.toMatch(/max retries/i);
    await store.backend.close();
  });

  it('servername: the name the certificate carries connects; another is a certificate error', async () => {
    const ns = fresh();
    const good = redisState({
      url: redis.url,
      tls: { ca: redis.caFile, servername: 'localhost' },
      authTokenEnv: 'TRIBUTARY_TEST_REDIS_TOKEN',
    });
    expect(await good.backend.write([{ id: `${ns}|0|1|0`, expected: 0, body: 'n', expiresAt: 0 }])).toEqual([true]);
    await good.backend.close();
    const other = redisState({
      url: redis.url,
      tls: { ca: redis.caFile, servername: 'cache.example.com' },
      authTokenEnv: 'TRIBUTARY_TEST_REDIS_TOKEN',
    });
    const err = await rejection(other.backend.read([`${ns}|0|1|0`]));
    expect(String(err)).toMatch(
      /the server's TLS certificate does not verify \(Hostname\/IP does not match certificate's altnames: Host: cache\.example\.com\. is not in the cert's altnames: IP Address:127\.0\.0\.1, DNS:localhost\)/,
    );
    await other.backend.close();
  });

  it('rejectUnauthorized: false connects without the CA', async () => {
    const store = redisState({
      url: redis.url,
      tls: { rejectUnauthorized: false },
      authTokenEnv: 'TRIBUTARY_TEST_REDIS_TOKEN',
    });
    const ns = fresh();
    expect(await store.backend.write([{ id: `${ns}|0|1|0`, expected: 0, body: 'y', expiresAt: 0 }])).toEqual([true]);
    await store.backend.close();
  });

  it('settings that do not fit together are refused when the store is made, naming the setting', () => {
    const url = redis.url;
    expect(() => redisState({ url: url.replace('rediss', 'redis'), tls: { ca: redis.caFile } })).toThrow(
      'redis state store: Expected a rediss:// URL with `tls` (a redis:// URL is plain TCP): write rediss://host:port',
    );
    expect(() => redisState({ url, authTokenEnv: 'A', authTokenSecret: 'b' })).toThrow(
      'redis state store: Expected at most one of `authTokenEnv` and `authTokenSecret`, got both',
    );
    expect(() => redisState({ url, authTokenEnv: 'TRIBUTARY_TEST_UNSET_VARIABLE' })).toThrow(
      'redis state store: authTokenEnv: the environment variable TRIBUTARY_TEST_UNSET_VARIABLE is not set',
    );
    expect(() =>
      redisState({ url: `rediss://:${TOKEN}@127.0.0.1:1`, authTokenEnv: 'TRIBUTARY_TEST_REDIS_TOKEN' }),
    ).toThrow('redis state store: Expected the AUTH token in one place: the URL holds one, and so does `authTokenEnv`');
    expect(() => redisState({ url, tls: { ca: 'no-such-ca.pem' }, baseDir: redis.dir })).toThrow(
      `redis state store: tls.ca: cannot read ${join(redis.dir, 'no-such-ca.pem')}`,
    );
    expect(() => redisState({ cluster: ['127.0.0.1:1'], authTokenSecret: 's' })).toThrow(
      'redis state store: `authTokenSecret` works with `url` only; with `cluster`, give the token by `authTokenEnv`',
    );
  });

  it('declares secretsmanager:GetSecretValue on its secret when the token is one, and nothing otherwise', () => {
    expect(redisStoreDefinition.permissions?.({ url: redis.url, authTokenSecret: 'redis/token' } as never)).toEqual([
      { actions: ['secretsmanager:GetSecretValue'], resource: { type: 'secret', id: 'redis/token' } },
    ]);
    expect(redisStoreDefinition.permissions?.({ url: redis.url, authTokenEnv: 'T' } as never)).toEqual([]);
  });
});

// ---- the sink -----------------------------------------------------------------------------

const recordsOf = (count: number) =>
  Array.from({ length: count }, (_, i) =>
    envelope(
      { partitionKey: `k${i % 5}`, sequenceNumber: String(i + 1), arrivalTime: 0 },
      'shardId-0',
      { id: `r${i}`, n: i },
      0,
    ),
  );
const fast = { retry: { minDelay: 1, maxDelay: 10 } };
const collect = () => {
  const dead: unknown[] = [];
  return { dead, context: { deadLetter: (env: unknown, error: unknown) => dead.push({ env, error }) } };
};

describe('redis sink over TLS with an AUTH token', () => {
  it('writes every record over rediss:// with the CA and the env token; with a secret, reads it once for many writes', async () => {
    for (const auth of [{ authTokenEnv: 'TRIBUTARY_TEST_REDIS_TOKEN' }, { authTokenSecret: 'redis/token' }]) {
      const prefix = fresh();
      const before = secrets.reads.length;
      const sink = redisSink({
        url: redis.url,
        command: 'set',
        key: (v) => `${prefix}:${(v as { id: string }).id}`,
        tls: { ca: redis.caFile },
        ...auth,
        secretsManager: { endpoint: secrets.url },
        ...fast,
      });
      const records = recordsOf(1200);
      const { dead, context } = collect();
      for (let i = 0; i < records.length; i += 400) await sink.write(records.slice(i, i + 400), context);
      await sink.close();
      expect(dead).toEqual([]);
      expect(await check.mget(...records.map((r) => `${prefix}:${(r.value as { id: string }).id}`))).toEqual(
        records.map((r) => JSON.stringify(r.value)),
      );
      expect(secrets.reads.length - before).toBe('authTokenSecret' in auth ? 1 : 0);
    }
  });

  it('a wrong token fails the write at once (not retried, nothing dead-lettered), never showing a token', async () => {
    const sink = redisSink({
      url: redis.url,
      command: 'set',
      key: () => 'never',
      tls: { ca: redis.caFile },
      authTokenEnv: 'TRIBUTARY_TEST_WRONG_TOKEN',
      ...fast,
    });
    const { dead, context } = collect();
    const err = await rejection(sink.write(recordsOf(10), context));
    await sink.close();
    expect(String(err)).toMatch(
      /redis set: RedisConnectionError: redis rediss:\/\/127\.0\.0\.1:\d+: authentication refused/,
    );
    expect(dead).toEqual([]);
    expect(sink.metrics.retries).toBe(0);
    expect(shown(err)).not.toContain(WRONG);
  });

  it('without the CA a certificate error fails the write, not a hang', async () => {
    const sink = redisSink({
      url: redis.url,
      command: 'set',
      key: () => 'never',
      authTokenEnv: 'TRIBUTARY_TEST_REDIS_TOKEN',
      ...fast,
    });
    const { dead, context } = collect();
    const err = await rejection(sink.write(recordsOf(3), context));
    await sink.close();
    expect(String(err)).toMatch(
      /the server's TLS certificate does not verify \(self[- ]signed certificate in certificate chain\)/,
    );
    expect(dead).toEqual([]);
    expect(sink.metrics.retries).toBe(0);
  });

  it('a YAML sink with tls and authTokenEnv validates and runs; its permissions name the secret only when there is one', async () => {
    const prefix = fresh();
    const yaml = [
      'version: 1',
      'name: tls-sink',
      'source: { file: { path: in.jsonl } }',
      'steps:',
      `  - sink: { redis: { url: '${redis.url}', command: hset, key: '"${prefix}"', field: event.id, tls: { ca: ca.crt }, authTokenEnv: TRIBUTARY_TEST_REDIS_TOKEN } }`,
      '',
    ].join('\n');
    const parsed = parsePipelineYaml(yaml, join(redis.dir, 'p.yaml'));
    expect(parsed.issues).toEqual([]);
    const spec = parsed.spec;
    if (!spec) throw new Error('no spec');
    const c = compile({ spec, bindings: new Map(), baseDir: redis.dir });
    const values = Array.from({ length: 40 }, (_, i) => ({ id: `h${i}`, n: i }));
    const result = await c.process({
      shardId: 's0',
      records: values.map((value, i) => ({ value, partitionKey: 'k', sequenceNumber: String(i + 1), arrivalTime: 0 })),
    });
    await c.close();
    expect(result).toMatchObject({ recordsOut: 40, deadLettered: 0 });
    const stored = await check.hgetall(prefix);
    expect(Object.fromEntries(Object.entries(stored).map(([k, v]) => [k, JSON.parse(v)]))).toEqual(
      Object.fromEntries(values.map((v) => [v.id, v])),
    );
    expect(
      redisSinkDefinition.permissions?.({
        authTokenSecret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:t',
      } as never),
    ).toEqual([
      {
        actions: ['secretsmanager:GetSecretValue'],
        resource: { type: 'secret', id: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:t' },
      },
    ]);
    expect(redisSinkDefinition.permissions?.({ authTokenEnv: 'T' } as never)).toEqual([]);
  });
});
