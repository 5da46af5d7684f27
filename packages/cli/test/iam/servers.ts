// Loopback stand-ins for the two services without an emulator here, speaking their JSON 1.1
// protocols through the real SDK: Firehose (PutRecordBatch, keeping what it accepted) and
// Secrets Manager (GetSecretValue of the secrets it holds).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ACCOUNT } from './recorder.js';

async function serveJson(handle: (target: string, input: Record<string, unknown>) => [number, unknown]) {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const [status, body] = handle(
        String(req.headers['x-amz-target'] ?? ''),
        JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>,
      );
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A Firehose holding every record (its data as text) it accepted, by delivery stream. */
export async function startFirehose() {
  const delivered = new Map<string, string[]>();
  const server = await serveJson((target, input) => {
    if (target !== 'Firehose_20150804.PutRecordBatch') return [400, { __type: 'InvalidArgumentException' }];
    const name = input.DeliveryStreamName as string;
    const records = (input.Records ?? []) as { Data: string }[];
    const list = delivered.get(name) ?? [];
    for (const r of records) list.push(Buffer.from(r.Data, 'base64').toString('utf8'));
    delivered.set(name, list);
    return [
      200,
      { FailedPutCount: 0, Encrypted: false, RequestResponses: records.map((_, i) => ({ RecordId: `r${i}` })) },
    ];
  });
  return { ...server, delivered };
}

/** A Secrets Manager holding `secrets` (name → text); ARNs carry the six characters AWS appends. */
export async function startSecretsManager(secrets: Record<string, string>) {
  return serveJson((target, input) => {
    const id = input.SecretId as string;
    const value = secrets[id];
    if (target !== 'secretsmanager.GetSecretValue' || value === undefined)
      return [400, { __type: 'ResourceNotFoundException', message: `no secret ${id}` }];
    return [
      200,
      {
        ARN: `arn:aws:secretsmanager:${ACCOUNT.region}:${ACCOUNT.accountId}:secret:${id}-AbCdEf`,
        Name: id,
        SecretString: value,
      },
    ];
  });
}
