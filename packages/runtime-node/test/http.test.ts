import { request } from 'node:http';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type HttpServer, type ProbeResult, startHttpServer } from '../src/http.js';
import { PromWorkerMetrics } from '../src/metrics.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A real HTTP request on loopback. */
function get(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const servers: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(health: () => ProbeResult, ready: () => ProbeResult, metrics = new PromWorkerMetrics()) {
  const server = await startHttpServer({ port: 0, host: '127.0.0.1', metrics, health, ready });
  servers.push(server);
  return { server, metrics };
}

describe('startHttpServer', () => {
  it('/metrics serves the registry as Prometheus text with its content type; values follow the calls', async () => {
    const { server, metrics } = await start(
      () => ({ ok: true }),
      () => ({ ok: true }),
    );
    expect(server.port).toBeGreaterThan(0);
    metrics.recordsIn('shardId-000000000003', 41);
    metrics.recordsIn('shardId-000000000003', 1);
    metrics.leasesHeld(2);
    const first = await get(server.port, '/metrics');
    expect(first.status).toBe(200);
    expect(first.headers['content-type']).toBe(metrics.contentType);
    expect(first.body).toContain('\ntributary_records_in_total{shard="shardId-000000000003"} 42\n');
    expect(first.body).toContain('\ntributary_leases_held 2\n');
    expect(first.body).toContain('\nprocess_resident_memory_bytes ');
    metrics.recordsIn('shardId-000000000003', 8);
    const second = await get(server.port, '/metrics?x=1');
    expect(second.body).toContain('\ntributary_records_in_total{shard="shardId-000000000003"} 50\n');
    // HEAD: the headers of GET, no body.
    const head = await get(server.port, '/metrics', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });

  it('/healthz and /readyz answer 200 or 503 as their probes say, with the detail in a JSON body', async () => {
    let live: ProbeResult = { ok: true, detail: 'loop running' };
    let ready: ProbeResult = { ok: false, detail: 'no lease held yet' };
    const { server } = await start(
      () => live,
      () => ready,
    );
    const h1 = await get(server.port, '/healthz');
    expect([h1.status, h1.headers['content-type'], JSON.parse(h1.body)]).toEqual([
      200,
      'application/json; charset=utf-8',
      { ok: true, detail: 'loop running' },
    ]);
    const r1 = await get(server.port, '/readyz');
    expect([r1.status, JSON.parse(r1.body)]).toEqual([503, { ok: false, detail: 'no lease held yet' }]);
    ready = { ok: true };
    live = { ok: false, detail: 'the worker loop ended: boom' };
    const r2 = await get(server.port, '/readyz');
    expect([r2.status, JSON.parse(r2.body)]).toEqual([200, { ok: true }]);
    const h2 = await get(server.port, '/healthz');
    expect([h2.status, JSON.parse(h2.body)]).toEqual([503, { ok: false, detail: 'the worker loop ended: boom' }]);
  });

  it('a probe that throws answers 503 with its message', async () => {
    const { server } = await start(
      () => {
        throw new Error('coordinator not built');
      },
      () => ({ ok: true }),
    );
    const h = await get(server.port, '/healthz');
    expect([h.status, JSON.parse(h.body)]).toEqual([503, { ok: false, detail: 'coordinator not built' }]);
  });

  it('other paths are 404 and other methods 405', async () => {
    const { server } = await start(
      () => ({ ok: true }),
      () => ({ ok: true }),
    );
    const n = await get(server.port, '/');
    expect(n.status).toBe(404);
    expect(n.body).toBe('not found: /; try /metrics, /healthz, /readyz\n');
    expect((await get(server.port, '/metrics/x')).status).toBe(404);
    const p = await get(server.port, '/metrics', 'POST');
    expect([p.status, p.headers.allow]).toEqual([405, 'GET, HEAD']);
  });

  it('a metrics text that fails answers 500 with its message', async () => {
    const failing = {
      contentType: 'text/plain',
      text: () => Promise.reject(new Error('collect failed')),
    };
    const server = await startHttpServer({
      port: 0,
      host: '127.0.0.1',
      metrics: failing,
      health: () => ({ ok: true }),
      ready: () => ({ ok: true }),
    });
    servers.push(server);
    const r = await get(server.port, '/metrics');
    expect([r.status, r.body]).toEqual([500, 'collect failed\n']);
  });

  it('close() stops listening (a connection is then refused) and can be called twice', async () => {
    const server = await startHttpServer({
      port: 0,
      host: '127.0.0.1',
      metrics: new PromWorkerMetrics({ processMetrics: false }),
      health: () => ({ ok: true }),
      ready: () => ({ ok: true }),
    });
    expect((await get(server.port, '/healthz')).status).toBe(200);
    await Promise.all([server.close(), server.close()]);
    await expect(get(server.port, '/healthz')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('a port in use is refused with the address named; a port out of range before listening', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      await expect(
        startHttpServer({
          port,
          host: '127.0.0.1',
          metrics: new PromWorkerMetrics({ processMetrics: false }),
          health: () => ({ ok: true }),
          ready: () => ({ ok: true }),
        }),
      ).rejects.toThrow(`the metrics endpoint cannot listen on 127.0.0.1:${port}: listen EADDRINUSE`);
    } finally {
      await new Promise((r) => taken.close(r));
    }
    await expect(
      startHttpServer({
        port: 70_000,
        metrics: new PromWorkerMetrics({ processMetrics: false }),
        health: () => ({ ok: true }),
        ready: () => ({ ok: true }),
      }),
    ).rejects.toThrow('Expected `port` to be an integer from 0 to 65535, got 70000');
  });
});
