// kinesis-local (kinesis-mock built for Node) in a child process, for what kinesalite does not
// serve: enhanced fan-out (RegisterStreamConsumer, SubscribeToShard over HTTP/2). It is started
// from its own folder (it reads its certificate, server.json, from there) on free ports, and
// listens on the loopback address only (loopbackListen.cjs).
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

export interface KinesisLocal {
  /** Its plain-HTTP endpoint (HTTP/1.1, and HTTP/2 without TLS). */
  endpoint: string;
  close(): Promise<void>;
}

/** Starts kinesis-local; resolves once it accepts connections. */
export async function startKinesisLocal(): Promise<KinesisLocal> {
  const dir = dirname(require.resolve('kinesis-local/package.json'));
  const [plain, tls] = [await freePort(), await freePort()];
  const preload = join(dirname(fileURLToPath(import.meta.url)), 'loopbackListen.cjs');
  const child: ChildProcess = spawn(process.execPath, ['--require', preload, join(dir, 'main.js')], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '',
      KINESIS_LOCAL_PARENT_PID: String(process.pid),
      KINESIS_MOCK_PLAIN_PORT: String(plain),
      KINESIS_MOCK_TLS_PORT: String(tls),
      LOG_LEVEL: 'ERROR',
      CREATE_STREAM_DURATION: '10ms',
      REGISTER_STREAM_CONSUMER_DURATION: '10ms',
      SPLIT_SHARD_DURATION: '10ms',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr = (stderr + String(d)).slice(-4000);
  });
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  };
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`kinesis-local exited (${child.exitCode}): ${stderr}`);
    if (await accepts(plain)) return { endpoint: `http://127.0.0.1:${plain}`, close };
    await new Promise((r) => setTimeout(r, 50));
  }
  await close();
  throw new Error(`kinesis-local did not start on port ${plain}: ${stderr}`);
}
