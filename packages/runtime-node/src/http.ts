/**
 * The worker's HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (liveness: 200 while the
 * worker's loop runs) and `/readyz` (readiness: 200 once the lease coordinator has started and
 * holds leases, 503 otherwise). Anything else is 404; only GET and HEAD are answered (405 else).
 * The health and readiness bodies are JSON `{ ok, detail }`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '@tributary/core/spi';

/** A probe's answer: `ok` gives 200, else 503; `detail` is shown in the body. */
export interface ProbeResult {
  ok: boolean;
  detail?: string;
}

/** What `/metrics` serves. */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export interface HttpServerOptions {
  /** The port to listen on; 0 picks a free one (see `port` of the result). */
  port: number;
  /** The address to listen on (default 0.0.0.0: every interface, as a container's probe needs). */
  host?: string;
  metrics: MetricsSource;
  /** `/healthz`: 200 while the process's loop runs. */
  health: () => ProbeResult;
  /** `/readyz`: 200 once leases are held (the coordinator has started). */
  ready: () => ProbeResult;
}

export interface HttpServer {
  /** The port listened on (the one picked when 0 was asked). */
  readonly port: number;
  readonly host: string;
  /** Stops listening and ends open connections; resolves when the server is closed. */
  close(): Promise<void>;
}

/**
 * Starts the endpoint; resolves once it listens, rejects when it cannot (the port is taken: the
 * message names the address).
 */
export function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { port, metrics, health, ready } = options;
  const host = options.host ?? '0.0.0.0';
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    return Promise.reject(new ConfigError(`Expected \`port\` to be an integer from 0 to 65535, got ${port}`));
  const server: Server = createServer((req, res) => {
    answer(req, res, { metrics, health, ready }).catch((err: unknown) => {
      if (!res.headersSent)
        send(res, 500, 'text/plain; charset=utf-8', `${errorMessage(err)}\n`, req.method === 'HEAD');
      else res.destroy();
    });
  });
  // A probe's connection must not keep the process alive after close().
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    const onError = (err: Error) =>
      reject(new Error(`the metrics endpoint cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address() as AddressInfo;
      let closing: Promise<void> | undefined;
      resolve({
        port: address.port,
        host,
        close: () => {
          closing ??= new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            server.closeAllConnections();
          });
          return closing;
        },
      });
    });
  });
}

async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  { metrics, health, ready }: Pick<HttpServerOptions, 'metrics' | 'health' | 'ready'>,
): Promise<void> {
  const head = req.method === 'HEAD';
  const path = (req.url ?? '/').split('?')[0];
  const known = path === '/metrics' || path === '/healthz' || path === '/readyz';
  if (!known)
    return send(res, 404, 'text/plain; charset=utf-8', `not found: ${path}; try /metrics, /healthz, /readyz\n`, head);
  if (req.method !== 'GET' && !head) {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, 'text/plain; charset=utf-8', `${req.method} not allowed; GET or HEAD\n`, false);
  }
  if (path === '/metrics') return send(res, 200, metrics.contentType, await metrics.text(), head);
  const probe = path === '/healthz' ? health : ready;
  let result: ProbeResult;
  try {
    result = probe();
  } catch (err) {
    result = { ok: false, detail: errorMessage(err) };
  }
  const body = `${JSON.stringify({ ok: result.ok, ...(result.detail === undefined ? {} : { detail: result.detail }) })}\n`;
  return send(res, result.ok ? 200 : 503, 'application/json; charset=utf-8', body, head);
}

function send(res: ServerResponse, status: number, contentType: string, body: string, head: boolean): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : body);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
