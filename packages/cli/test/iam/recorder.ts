// A recorder of the AWS requests a bundle sends: a loopback HTTP proxy in front of an emulator
// that forwards each request unchanged and notes what IAM would authorise — the action
// (`dynamodb:UpdateItem`, `sqs:SendMessage` for SendMessageBatch, `s3:PutObject` for a multipart
// part) and the ARNs of the resources it acts on, read from the request itself (the JSON
// protocols' `X-Amz-Target` and body; S3's method, path and query). The bundle is pointed at the
// proxy by the SDK's own `AWS_ENDPOINT_URL_<SERVICE>` variables, not by an `endpoint:` in the spec.
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Service = 'dynamodb' | 'kinesis' | 'sqs' | 's3' | 'firehose' | 'secretsmanager';

/** The partition, region and account the recorder's ARNs are in (the policy check resolves `Fn::Sub` with the same). */
export const ACCOUNT = { partition: 'aws', region: 'us-east-1', accountId: '000000000000' } as const;

/** One authorisation a request needs: an IAM action on a resource ARN. */
export interface Authorisation {
  action: string;
  resource: string;
}

/** One request the bundle sent, and what IAM would check for it. */
export interface RecordedCall {
  service: Service;
  /** The API operation, e.g. `SendMessageBatch`, `CreateMultipartUpload`. */
  operation: string;
  /** Each action/resource pair the call needs allowed (several for a batch over two tables, an SSE-KMS put). */
  needs: Authorisation[];
  /** The emulator's HTTP status. */
  status: number;
}

/**
 * IAM actions whose name is not the operation's: SQS authorises a batch as its single action,
 * S3 a multipart upload's steps as `PutObject`.
 */
const SQS_ACTION: Record<string, string> = {
  SendMessageBatch: 'SendMessage',
  DeleteMessageBatch: 'DeleteMessage',
  ChangeMessageVisibilityBatch: 'ChangeMessageVisibility',
};

const { partition, region, accountId } = ACCOUNT;
const arnOf = (service: string, rest: string) =>
  rest.startsWith('arn:') ? rest : `arn:${partition}:${service}:${region}:${accountId}:${rest}`;

/** `https://sqs.<region>.amazonaws.com/<account>/<name>` (or any host) → the queue's ARN. */
export function queueArnOfUrl(url: string): string {
  const u = new URL(url);
  const [account, name] = u.pathname.split('/').filter(Boolean);
  const m =
    /^sqs\.([a-z0-9-]+)\.amazonaws\.com/.exec(u.hostname) ?? /^([a-z0-9-]+)\.queue\.amazonaws\.com/.exec(u.hostname);
  return `arn:${partition}:sqs:${m?.[1] ?? region}:${account ?? accountId}:${name ?? ''}`;
}

function dynamoDbNeeds(operation: string, body: Record<string, unknown>): Authorisation[] {
  const action = `dynamodb:${operation}`;
  const table = (t: string) => arnOf('dynamodb', `table/${t}`);
  if (operation === 'BatchGetItem' || operation === 'BatchWriteItem') {
    return Object.keys((body.RequestItems ?? {}) as object).map((t) => ({ action, resource: table(t) }));
  }
  if (operation === 'TransactWriteItems' || operation === 'TransactGetItems') {
    return ((body.TransactItems ?? []) as Record<string, { TableName?: string }>[]).flatMap((item) =>
      Object.entries(item).map(([kind, op]) => ({
        action: `dynamodb:${kind === 'ConditionCheck' ? 'ConditionCheckItem' : `${kind}Item`}`,
        resource: table(op.TableName ?? ''),
      })),
    );
  }
  if (typeof body.TableName === 'string') {
    const arn = table(body.TableName);
    return [{ action, resource: typeof body.IndexName === 'string' ? `${arn}/index/${body.IndexName}` : arn }];
  }
  if (typeof body.StreamArn === 'string') return [{ action, resource: body.StreamArn }];
  return [{ action, resource: '*' }];
}

function kinesisNeeds(
  operation: string,
  body: Record<string, unknown>,
  lastStream: string | undefined,
  iterators: ReadonlyMap<string, string>,
) {
  const action = `kinesis:${operation}`;
  // GetRecords names only its iterator: it is authorised on the stream the iterator was issued for.
  if (typeof body.ShardIterator === 'string') return [{ action, resource: iterators.get(body.ShardIterator) ?? '*' }];
  if (typeof body.ConsumerARN === 'string') return [{ action, resource: body.ConsumerARN }];
  const stream =
    typeof body.StreamARN === 'string'
      ? body.StreamARN
      : typeof body.StreamName === 'string'
        ? arnOf('kinesis', `stream/${body.StreamName}`)
        : undefined;
  if (stream && typeof body.ConsumerName === 'string') {
    return [{ action, resource: `${stream}/consumer/${body.ConsumerName}:0` }];
  }
  // A page after the first (`NextToken` only) is authorised on the stream the token was issued for.
  if (!stream && typeof body.NextToken === 'string' && lastStream) return [{ action, resource: lastStream }];
  return [{ action, resource: stream ?? '*' }];
}

/**
 * An S3 REST request (path style: `/<bucket>/<key>`) as its operation and IAM action on
 * `arn:aws:s3:::bucket/key`. With SSE-KMS (`x-amz-server-side-encryption: aws:kms`), S3 asks KMS
 * for a data key on the caller's behalf: the caller needs `kms:GenerateDataKey` on the key (and
 * `kms:Decrypt` for the parts of a multipart upload), recorded here as needs of the same call.
 */
function s3Needs(
  method: string,
  url: string,
  headers: IncomingHttpHeaders,
): { operation: string; needs: Authorisation[] } {
  const u = new URL(url, 'http://s3');
  const [bucket = '', ...rest] = u.pathname.split('/').filter(Boolean);
  const key = rest.map(decodeURIComponent).join('/');
  const q = u.searchParams;
  const object = `arn:${partition}:s3:::${bucket}/${key}`;
  const bucketArn = `arn:${partition}:s3:::${bucket}`;
  let operation: string;
  let needs: Authorisation[];
  const on = (action: string, resource = object) => [{ action: `s3:${action}`, resource }];
  if (key === '') {
    operation = method === 'GET' ? 'ListObjectsV2' : method === 'HEAD' ? 'HeadBucket' : `${method}Bucket`;
    needs = on(method === 'GET' || method === 'HEAD' ? 'ListBucket' : `${method}Bucket`, bucketArn);
  } else if (method === 'POST' && q.has('uploads')) [operation, needs] = ['CreateMultipartUpload', on('PutObject')];
  else if (method === 'PUT' && q.has('uploadId')) [operation, needs] = ['UploadPart', on('PutObject')];
  else if (method === 'POST' && q.has('uploadId')) [operation, needs] = ['CompleteMultipartUpload', on('PutObject')];
  else if (method === 'DELETE' && q.has('uploadId'))
    [operation, needs] = ['AbortMultipartUpload', on('AbortMultipartUpload')];
  else if (method === 'PUT') [operation, needs] = ['PutObject', on('PutObject')];
  else if (method === 'GET' || method === 'HEAD')
    [operation, needs] = [method === 'GET' ? 'GetObject' : 'HeadObject', on('GetObject')];
  else if (method === 'DELETE') [operation, needs] = ['DeleteObject', on('DeleteObject')];
  else [operation, needs] = [`${method}Object`, on(`${method}Object`)];
  const kmsKey = headers['x-amz-server-side-encryption-aws-kms-key-id'];
  if (headers['x-amz-server-side-encryption'] === 'aws:kms' || typeof kmsKey === 'string') {
    const keyArn =
      typeof kmsKey !== 'string'
        ? `arn:${partition}:kms:${region}:${accountId}:alias/aws/s3`
        : kmsKey.startsWith('arn:')
          ? kmsKey
          : arnOf('kms', kmsKey.startsWith('alias/') ? kmsKey : `key/${kmsKey}`);
    needs = [...needs, { action: 'kms:GenerateDataKey', resource: keyArn }];
  }
  return { operation, needs };
}

export interface Recorder {
  service: Service;
  /** The proxy's URL: what `AWS_ENDPOINT_URL_<SERVICE>` is set to. */
  endpoint: string;
  calls: RecordedCall[];
  close(): Promise<void>;
}

/**
 * Streams and queues encrypted with a customer managed KMS key (resource ARN → key ARN): the
 * service then calls KMS as the caller — a writer to a stream needs kms:GenerateDataKey, a reader
 * kms:Decrypt, a sender to a queue both — recorded as needs of the same call. (The emulators do
 * not encrypt; this is the service's documented behaviour, as for S3's SSE-KMS.)
 */
export type CustomerKeys = Record<string, string>;

const KMS_USE: Record<string, string[]> = {
  'kinesis:PutRecords': ['kms:GenerateDataKey'],
  'kinesis:PutRecord': ['kms:GenerateDataKey'],
  'kinesis:GetRecords': ['kms:Decrypt'],
  'kinesis:SubscribeToShard': ['kms:Decrypt'],
  'sqs:SendMessage': ['kms:GenerateDataKey', 'kms:Decrypt'],
  'sqs:ReceiveMessage': ['kms:Decrypt'],
};

/** A recording proxy for `service` in front of `target` (an emulator's endpoint). */
export async function startRecorder(service: Service, target: string, keys: CustomerKeys = {}): Promise<Recorder> {
  const calls: RecordedCall[] = [];
  const to = new URL(target);
  let lastStream: string | undefined;
  /** Shard iterators handed out (GetShardIterator, GetRecords' NextShardIterator) → their stream. */
  const iterators = new Map<string, string>();
  // SSE-KMS is declared on CreateMultipartUpload only; completing the upload decrypts its data key
  // (S3 reads the encrypted parts), so the caller needs kms:Decrypt on the key then.
  const uploadKeys = new Map<string, string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const method = req.method ?? 'GET';
      const url = req.url ?? '/';
      let call: Omit<RecordedCall, 'status'>;
      if (service === 's3') {
        const { operation, needs } = s3Needs(method, url, req.headers);
        const uploadId = new URL(url, 'http://s3').searchParams.get('uploadId');
        const kms = needs.find((n) => n.action === 'kms:GenerateDataKey');
        if (operation === 'CompleteMultipartUpload' && uploadId && uploadKeys.has(uploadId))
          needs.push({ action: 'kms:Decrypt', resource: uploadKeys.get(uploadId) as string });
        call = { service, operation, needs };
        if (operation === 'CreateMultipartUpload' && kms) {
          // The upload id is in the answer: noted below, when it arrives.
          (call as { kmsKey?: string }).kmsKey = kms.resource;
        }
      } else {
        const target = String(req.headers['x-amz-target'] ?? '');
        const operation = target.slice(target.indexOf('.') + 1);
        let input: Record<string, unknown> = {};
        try {
          input = body.length > 0 ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
        } catch {
          input = {};
        }
        let needs: Authorisation[];
        if (service === 'dynamodb') needs = dynamoDbNeeds(operation, input);
        else if (service === 'kinesis') {
          needs = kinesisNeeds(operation, input, lastStream, iterators);
          if (operation === 'ListShards' && needs[0]?.resource !== '*') lastStream = needs[0]?.resource;
        } else if (service === 'sqs') {
          const action = `sqs:${SQS_ACTION[operation] ?? operation}`;
          needs = [{ action, resource: typeof input.QueueUrl === 'string' ? queueArnOfUrl(input.QueueUrl) : '*' }];
        } else if (service === 'secretsmanager') {
          // By name, the secret's ARN ends in the six characters Secrets Manager appends to it.
          const id = String(input.SecretId ?? '*');
          needs = [
            {
              action: `secretsmanager:${operation}`,
              resource: id.startsWith('arn:') ? id : arnOf('secretsmanager', `secret:${id}-AbCdEf`),
            },
          ];
        } else {
          const name = input.DeliveryStreamName;
          needs = [
            {
              action: `firehose:${operation}`,
              resource: typeof name === 'string' ? arnOf('firehose', `deliverystream/${name}`) : '*',
            },
          ];
        }
        for (const n of [...needs]) {
          const key = keys[n.resource];
          if (key) for (const action of KMS_USE[n.action] ?? []) needs.push({ action, resource: key });
        }
        call = { service, operation, needs };
      }
      const headers = { ...req.headers, host: to.host };
      const forward = httpRequest({ host: to.hostname, port: to.port, method, path: url, headers }, (answer) => {
        const out: Buffer[] = [];
        answer.on('data', (c: Buffer) => out.push(c));
        answer.on('end', () => {
          const text = Buffer.concat(out);
          if (service === 'kinesis' && (call.operation === 'GetShardIterator' || call.operation === 'GetRecords')) {
            try {
              const answer = JSON.parse(text.toString('utf8')) as {
                ShardIterator?: string;
                NextShardIterator?: string;
              };
              const next = answer.ShardIterator ?? answer.NextShardIterator;
              const stream = call.needs[0]?.resource;
              if (next && stream && stream !== '*') iterators.set(next, stream);
            } catch {
              // not JSON: an error page, no iterator
            }
          }
          const kmsKey = (call as { kmsKey?: string }).kmsKey;
          if (kmsKey) {
            const id = /<UploadId>([^<]+)<\/UploadId>/.exec(text.toString('utf8'))?.[1];
            if (id) uploadKeys.set(id, kmsKey);
            delete (call as { kmsKey?: string }).kmsKey;
          }
          calls.push({ ...call, status: answer.statusCode ?? 0 });
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(text);
        });
      });
      forward.on('error', (err) => {
        calls.push({ ...call, status: 502 });
        if (res.headersSent) res.destroy();
        else {
          res.writeHead(502);
          res.end(String(err));
        }
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    service,
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The SDK's environment variable naming a service's endpoint. */
export const ENDPOINT_VARIABLE: Record<Service, string> = {
  dynamodb: 'AWS_ENDPOINT_URL_DYNAMODB',
  kinesis: 'AWS_ENDPOINT_URL_KINESIS',
  sqs: 'AWS_ENDPOINT_URL_SQS',
  s3: 'AWS_ENDPOINT_URL_S3',
  firehose: 'AWS_ENDPOINT_URL_FIREHOSE',
  secretsmanager: 'AWS_ENDPOINT_URL_SECRETS_MANAGER',
};
