// What the sink tests write and how they watch it: numbered records, a dead-letter collector
// standing in for the pipeline's context, the hostile values no JSON sink can encode, and a
// loopback HTTP server.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RecordEnvelope } from '@tributary/core';
import { envelope } from '@tributary/core/spi';
import { expect } from 'vitest';

export type Rec = { id: string; n: number; text: string };

/** `count` records of shard 0, sequence numbers from 1, 17 partition keys. */
export const recordsOf = (count: number, prefix = 'r'): RecordEnvelope<Rec>[] =>
  Array.from({ length: count }, (_, i) =>
    envelope(
      { partitionKey: `${prefix}${i % 17}`, sequenceNumber: String(i + 1), arrivalTime: 0 },
      'shardId-000000000000',
      { id: `${prefix}${i}`, n: i, text: `record ${i} ${'x'.repeat(i % 50)}` },
      0,
    ),
  );

/** One record of any value, with this sequence number. */
export const recordOf = (value: unknown, seq: number | string, partitionKey = 'k'): RecordEnvelope =>
  envelope({ partitionKey, sequenceNumber: String(seq), arrivalTime: 0 }, 's', value, 0);

/** A dead-letter collector standing in for the pipeline's context. */
export function deadLetters() {
  const dead: { env: RecordEnvelope; error: string }[] = [];
  return {
    dead,
    context: { deadLetter: (env: RecordEnvelope, error: unknown) => dead.push({ env, error: String(error) }) },
  };
}

/** Retries without waiting long. */
export const fast = { retry: { minDelay: 1, maxDelay: 10 } };

// ---- hostile values -----------------------------------------------------------------------

/** A value nested `depth` objects deep. */
export function deepValue(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return { id: 'deep', v };
}

/** A value that holds itself. */
export function circular(): unknown {
  const o: Record<string, unknown> = { id: 'circular' };
  o.self = o;
  return o;
}

/** Good records 1, 3, 5 around the hostile ones: 2 (circular) and 4 (nested 6,000 deep). */
export const hostileBatch = (): RecordEnvelope[] =>
  [{ id: 'g1', n: 1 }, circular(), { id: 'g3', n: 3 }, deepValue(6000), { id: 'g5', n: 5 }].map((v, i) =>
    envelope({ partitionKey: `k${i + 1}`, sequenceNumber: String(i + 1), arrivalTime: 0 }, 'shardId-0', v, 0),
  );

/** The hostile records 2 and 4, and only they, dead-lettered by the sink named `summary` as not encodable. */
export function expectEncodeFailures(dead: { env: RecordEnvelope; error: string }[], summary: string) {
  expect(dead.map((d) => ({ seq: d.env.sequenceNumber, error: d.error }))).toEqual([
    { seq: '2', error: `${summary}: EncodeFailed: the value cannot be written as JSON: it is circular` },
    { seq: '4', error: `${summary}: EncodeFailed: the value cannot be written as JSON: it is nested too deeply` },
  ]);
}

// ---- a loopback HTTP server ---------------------------------------------------------------

/** An HTTP server on a free loopback port, answering with `handle` once a request's body is read. */
export async function serveHttp(handle: (req: IncomingMessage, body: string, res: ServerResponse) => void) {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => handle(req, body, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
