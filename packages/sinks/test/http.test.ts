// The HTTP sink against loopback servers injecting 500s, 429s, 413s and slow replies: every
// record delivered, Retry-After honoured, the idempotency key letting the server drop a replayed
// request, requests too large split, statuses retrying cannot fix dead-lettered, values no JSON
// can hold dead-lettered while the rest is sent.
import { httpSink, SinkError } from '@tributary/sinks';
import { describe, expect, it } from 'vitest';
import {
  deadLetters,
  expectEncodeFailures,
  fast,
  hostileBatch,
  type Rec,
  recordOf,
  recordsOf,
  serveHttp,
} from './records.js';

describe('http sink (loopback server injecting 500s, 429s and slow replies)', () => {
  it('delivers every record; retries honour Retry-After; the idempotency key lets the server drop a replayed request', async () => {
    const received = new Map<string, unknown[]>(); // by Idempotency-Key, as a receiving server would de-duplicate
    let requests = 0;
    const waits: number[] = [];
    let lastAt = 0;
    const server = await serveHttp((req, body, res) => {
      requests++;
      const now = performance.now();
      if (lastAt) waits.push(now - lastAt);
      lastAt = now;
      const key = req.headers['idempotency-key'] as string;
      if (requests === 1) return res.writeHead(500).end();
      if (requests === 2) return res.writeHead(429, { 'retry-after': '0.2' }).end();
      if (requests === 3) {
        // Stored, but answered too late: the sink times out and sends it again.
        received.set(key, JSON.parse(body));
        setTimeout(() => res.writeHead(200).end(), 300);
        return;
      }
      received.set(key, JSON.parse(body));
      res.writeHead(200).end();
    });
    const sink = httpSink({
      url: `${server.url}/ingest`,
      batchSize: 40,
      timeout: 100,
      concurrency: 1,
      ...fast,
    });
    const records = recordsOf(200);
    await sink.write(records, deadLetters().context);
    const all = [...received.values()].flat();
    expect(all.sort((a, b) => (a as Rec).n - (b as Rec).n)).toEqual(records.map((r) => r.value));
    expect(requests).toBeGreaterThanOrEqual(5 + 3);
    expect(waits[1]).toBeGreaterThanOrEqual(190); // after the 429, Retry-After (0.2 s) was honoured
    await server.close();
  });

  it('413: a request too large for the server is split until it fits; a single record still too large is dead-lettered', async () => {
    const received: unknown[] = [];
    const server = await serveHttp((_req, body, res) => {
      if (body.length > 2000) return res.writeHead(413, 'Payload Too Large').end();
      received.push(...JSON.parse(body));
      res.writeHead(200).end();
    });
    const records = recordsOf(60);
    const huge = recordOf({ id: 'huge', text: 'h'.repeat(3000) }, 999);
    const { dead, context } = deadLetters();
    await httpSink({ url: `${server.url}/`, batchSize: 60, ...fast }).write([...records, huge], context);
    expect((received as Rec[]).sort((a, b) => a.n - b.n)).toEqual(records.map((r) => r.value));
    expect(dead.map((d) => d.error)).toEqual([`http 127.0.0.1:${server.port}: HTTP 413: Payload Too Large`]);
    await server.close();
  });

  it('a status that retrying cannot fix dead-letters the request; a destination down for good fails the write', async () => {
    const server = await serveHttp((_req, _body, res) => res.writeHead(400, 'Bad Request').end());
    const { port } = server;
    const { dead, context } = deadLetters();
    await httpSink({ url: `${server.url}/`, batchSize: 10, ...fast }).write(recordsOf(15), context);
    expect(dead.map((d) => d.error)).toEqual(Array(15).fill('http 127.0.0.1:' + port + ': HTTP 400: Bad Request'));
    await server.close();
    const down = httpSink({ url: `http://127.0.0.1:${port}/`, retry: { maxAttempts: 3, minDelay: 1, maxDelay: 2 } });
    await expect(down.write(recordsOf(2), context)).rejects.toBeInstanceOf(SinkError);
  });
});

describe('http sink: hostile values', () => {
  it('dead-letters what it cannot encode (circular, nested too deeply) and sends the rest', async () => {
    const bodies: unknown[] = [];
    const server = await serveHttp((_req, body, res) => {
      bodies.push(...(JSON.parse(body) as unknown[]));
      res.writeHead(200).end();
    });
    const url = `${server.url}/in`;
    const sink = httpSink({ url, ...fast });
    const { dead, context } = deadLetters();
    await sink.write(hostileBatch(), context);
    expectEncodeFailures(dead, `http ${new URL(url).host}`);
    expect(bodies).toEqual([
      { id: 'g1', n: 1 },
      { id: 'g3', n: 3 },
      { id: 'g5', n: 5 },
    ]);
    await server.close();
  });
});
