// Real servers on loopback, for the tests and benchmarks of the state and sink packages:
// dynalite (DynamoDB, in process) and a `redis-server` child process on a free port, with AOF
// persistence (fsync always) in a temporary directory. Loops are bounded and stop by themselves.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dynalite from 'dynalite';
import { Redis } from 'ioredis';

export async function startDynalite() {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function freePort() {
  const s = createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-redis-'));
  const port = await freePort();
  let child;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes'];
  args.push('--appendfsync', 'always', '--save', '', '--protected-mode', 'no');
  const start = async () => {
    child = spawn('redis-server', args, { stdio: 'ignore' });
    const exited = new Promise((_, reject) =>
      child.once('error', (err) => reject(new Error(`cannot start redis-server (is it installed?): ${err.message}`))),
    );
    exited.catch(() => {});
    for (let i = 0; i < 200; i++) {
      const probe = new Redis({
        port,
        host: '127.0.0.1',
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      probe.on('error', () => {}); // not up yet: connect() rejects
      try {
        await Promise.race([probe.connect(), exited]);
        if ((await probe.ping()) === 'PONG') {
          probe.disconnect();
          return;
        }
      } catch (err) {
        if (String(err).includes('cannot start redis-server')) throw err;
      }
      probe.disconnect();
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server did not start on port ${port}`);
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    start,
    close: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startKinesalite() {
  const { default: kinesalite } = await import('kinesalite');
  const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** An S3-compatible server (s3rver) on a free loopback port, storing in a temporary directory. */
export async function startS3() {
  const { default: S3rver } = await import('s3rver');
  const dir = mkdtempSync(join(tmpdir(), 'tributary-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
