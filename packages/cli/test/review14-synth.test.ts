// Review of issue 14's synth as an AWS engineer deploys with it: what the template and the role
// got wrong for settings a real pipeline has, each checked against an oracle taken from the
// pipeline file itself (the region each component names, the variables it reads, the hosts a
// resolver reads as this machine).
//
// - A component with its own `region` calls that region: its statement names that region's ARN
//   (it named the stack's, so the call was denied). A state store's `region` is dropped in the
//   bundle when the stack's table takes its place (the table is in the stack's region).
// - A Redis store or sink reading its AUTH token from `authTokenEnv` gets that variable on the
//   function, from a NoEcho parameter (nothing set it: the function failed at its first write).
// - `StreamKmsKeyId` (the stream's key and the role's kms:Decrypt resource) takes a multi-Region
//   key's ARN (`key/mrk-…`), still no alias.
// - `synth` catches a Redis URL or cluster seed on this machine in the forms the resolver reads
//   as 127.0.0.1 (`127.1`, `0x7f.1`, `0177.0.0.1`, `2130706433`, `0:0::1`), at line and column.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '@tributary/cli';
import { loadPipelineFile, type Pipeline, type PipelineSpec } from '@tributary/core';
import '@tributary/sinks';
import '@tributary/state';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stateTableNames } from '../src/synth/entry.js';
import { localSettings } from '../src/synth/localCheck.js';
import { redisTokenVariables, template } from '../src/synth/template.js';
import { allowing, roleStatements } from './iam/policy.js';
import { ACCOUNT } from './iam/recorder.js';
import { validate } from './support/cfnspec.js';

type Template = Parameters<typeof roleStatements>[0] & {
  Parameters: Record<string, Record<string, unknown>>;
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
};

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trib-review14-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(yaml: string): Promise<{ pipeline: Pipeline; file: string }> {
  const file = join(dir, `p${n++}.yaml`);
  await writeFile(file, yaml);
  return { pipeline: await loadPipelineFile(file), file };
}

const templateOf = (spec: PipelineSpec) => template(spec) as unknown as Template;

/** Values for the resources the template creates (the policy evaluator resolves their references). */
const created = (extra: Record<string, { Arn: string }> = {}) => ({
  resources: {
    Stream: { Arn: `arn:aws:kinesis:${ACCOUNT.region}:${ACCOUNT.accountId}:stream/stack-Stream-1` },
    FailureQueue: { Arn: `arn:aws:sqs:${ACCOUNT.region}:${ACCOUNT.accountId}:stack-FailureQueue-1` },
    LogGroup: { Arn: `arn:aws:logs:${ACCOUNT.region}:${ACCOUNT.accountId}:log-group:/aws/lambda/f:*` },
    ...extra,
  },
});

/** Whether the role lets `action` act on `arn`. */
const allows = (t: Template, action: string, arn: string) =>
  allowing(roleStatements(t, created()), { action, resource: arn }).length > 0;

describe("a component's own region", () => {
  // The stack runs in ACCOUNT.region (us-east-1); each component below names another region.
  const OTHER = 'eu-central-1';
  const arnIn = (service: string, region: string, rest: string) =>
    `arn:aws:${service}:${region}:${ACCOUNT.accountId}:${rest}`;
  const yaml = `version: 1
name: regions
source: { kinesis: { stream: clicks } }
steps:
  - enrich: { lookup: { dynamodb: { table: users, key: { id: event.u }, region: ${OTHER} } }, as: user }
  - sink: { dynamodb: { table: totals, region: ${OTHER} } }
  - sink: { kinesis: { stream: copies, partitionKey: event.k, region: ${OTHER} } }
  - sink: { firehose: { deliveryStream: archive, region: ${OTHER} } }
  - sink: { s3: { bucket: lake, kmsKeyId: 1234abcd-12ab-34cd-56ef-1234567890ab, region: ${OTHER} } }
  - sink: { dynamodb: { table: local-totals } }
`;
  // What each component calls, from the file: [action, resource ARN in the component's region].
  const calls: [string, string][] = [
    ['dynamodb:BatchGetItem', arnIn('dynamodb', OTHER, 'table/users')],
    ['dynamodb:BatchWriteItem', arnIn('dynamodb', OTHER, 'table/totals')],
    ['kinesis:PutRecords', arnIn('kinesis', OTHER, 'stream/copies')],
    ['firehose:PutRecordBatch', arnIn('firehose', OTHER, 'deliverystream/archive')],
    ['kms:GenerateDataKey', arnIn('kms', OTHER, 'key/1234abcd-12ab-34cd-56ef-1234567890ab')],
  ];

  it('is the region of the ARN its statement names, not the stack’s', async () => {
    const t = templateOf((await load(yaml)).pipeline.spec);
    expect(validate(t as unknown as Record<string, unknown>)).toEqual([]);
    for (const [action, arn] of calls) {
      expect(allows(t, action, arn), `${action} on ${arn}`).toBe(true);
      // And not the same resource in the stack's region, which the component never calls.
      expect(
        allows(t, action, arn.replace(`:${OTHER}:`, `:${ACCOUNT.region}:`)),
        `${action} in the stack's region`,
      ).toBe(false);
    }
    // A component without a region acts in the stack's.
    expect(allows(t, 'dynamodb:BatchWriteItem', arnIn('dynamodb', ACCOUNT.region, 'table/local-totals'))).toBe(true);
    expect(allows(t, 'dynamodb:BatchWriteItem', arnIn('dynamodb', OTHER, 'table/local-totals'))).toBe(false);
  });

  it("is dropped from a state store the stack's table replaces, kept where no table is given", async () => {
    const { pipeline } = await load(`version: 1
name: region-state
source: { kinesis: { stream: clicks } }
eventTime: event.ts
steps:
  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }, state: { dynamodb: { table: state-a, region: ${OTHER} } } }
  - sink: { stdout: {} }
`);
    const run = (env: Record<string, string>) => {
      const spec = structuredClone(pipeline.spec) as unknown as {
        steps: { window?: { state: { dynamodb: { table: string; region?: string } } } }[];
      };
      new Function('spec', 'process', stateTableNames(pipeline.spec))(spec, { env });
      return spec.steps[0]?.window?.state.dynamodb;
    };
    // The function: the stack's table, in the function's own region.
    expect(run({ TRIBUTARY_STATE_TABLE_0: 'stack-StateTable0-XYZ' })).toEqual({ table: 'stack-StateTable0-XYZ' });
    // The bundle run elsewhere (no variable): the pipeline file's table and region.
    expect(run({})).toEqual({ table: 'state-a', region: OTHER });
    // The role names the stack's table (in the stack's region), which the store now calls.
    const t = templateOf(pipeline.spec);
    const store = roleStatements(
      t,
      created({ StateTable0: { Arn: arnIn('dynamodb', ACCOUNT.region, 'table/stack-StateTable0-XYZ') } }),
    );
    expect(
      allowing(store, {
        action: 'dynamodb:UpdateItem',
        resource: arnIn('dynamodb', ACCOUNT.region, 'table/stack-StateTable0-XYZ'),
      }).length,
    ).toBeGreaterThan(0);
  });
});

describe("an SQS queue's URL", () => {
  it('names its region and account in every AWS host form: regional, dual-stack, interface endpoint', async () => {
    const urls = [
      'https://sqs.eu-west-1.amazonaws.com/111122223333/regional',
      'https://sqs.eu-west-1.api.aws/111122223333/dual-stack',
      'https://vpce-0a1b2c3d4e5f-abcdefgh.sqs.eu-west-1.vpce.amazonaws.com/111122223333/private',
    ];
    const steps = urls.map((u) => `  - sink: { sqs: { queueUrl: "${u}" } }`).join('\n');
    const t = templateOf(
      (await load(`version: 1\nname: queues\nsource: { kinesis: { stream: s } }\nsteps:\n${steps}\n`)).pipeline.spec,
    );
    for (const u of urls) {
      // The oracle: the region in the host, the account and name in the path.
      const region = /sqs\.([a-z0-9-]+)\./.exec(u)?.[1] as string;
      const [account, name] = new URL(u).pathname.split('/').filter(Boolean) as [string, string];
      expect(allows(t, 'sqs:SendMessage', `arn:aws:sqs:${region}:${account}:${name}`), u).toBe(true);
      expect(allows(t, 'sqs:SendMessage', `arn:aws:sqs:${ACCOUNT.region}:${account}:${name}`), u).toBe(false);
    }
  });
});

describe('a Redis AUTH token from authTokenEnv', () => {
  const yaml = `version: 1
name: redis-token
source: { kinesis: { stream: clicks } }
eventTime: event.ts
steps:
  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }, state: { redis: { url: "rediss://cache.example.com:6379", authTokenEnv: CACHE_TOKEN } } }
  - sink: { redis: { url: "rediss://cache.example.com:6379", command: set, key: event.k, authTokenEnv: CACHE_TOKEN } }
  - sink: { redis: { url: "rediss://other.example.com:6379", command: set, key: event.k, authTokenEnv: OTHER_TOKEN } }
  - sink: { redis: { url: "rediss://third.example.com:6379", command: set, key: event.k, authTokenSecret: third-token } }
`;

  it('reaches the function as the variable it names, from a NoEcho parameter each (one per variable)', async () => {
    const { pipeline } = await load(yaml);
    // The oracle: the authTokenEnv values in the file, each once.
    const variables = [...new Set([...yaml.matchAll(/authTokenEnv: (\w+)/g)].map((m) => m[1]))];
    expect(redisTokenVariables(pipeline.spec)).toEqual(variables);
    const t = templateOf(pipeline.spec);
    expect(validate(t as unknown as Record<string, unknown>)).toEqual([]);
    const fn = t.Resources.Function as unknown as {
      Properties: { Environment: { Variables: Record<string, unknown> } };
    };
    const env = fn.Properties.Environment.Variables;
    const tokenParameters = Object.keys(t.Parameters).filter((p) => p.startsWith('RedisAuthToken'));
    expect(tokenParameters).toHaveLength(variables.length);
    for (const v of variables) {
      const ref = (env[v as string] as { Ref?: string } | undefined)?.Ref;
      expect(ref, `${v} on the function`).toBeDefined();
      const p = t.Parameters[ref as string];
      expect(p?.NoEcho).toBe(true);
      expect(p?.Default).toBeUndefined();
      expect(String(p?.Description)).toContain(v);
    }
    // The secret's token is read by the function itself: no variable, no parameter for it.
    expect(JSON.stringify(env)).not.toContain('third-token');
  });

  it('adds nothing to a pipeline without one', async () => {
    const { pipeline } = await load(
      'version: 1\nname: redis-plain\nsource: { kinesis: { stream: clicks } }\nsteps:\n  - sink: { redis: { url: "rediss://c.example.com:6379", command: set, key: event.k } }\n',
    );
    const t = templateOf(pipeline.spec);
    expect(Object.keys(t.Parameters).filter((p) => p.startsWith('RedisAuthToken'))).toEqual([]);
  });
});

describe('a Secrets Manager secret by name', () => {
  it('is its name and the six characters AWS appends, not every secret whose name starts with it', async () => {
    const { pipeline } = await load(
      'version: 1\nname: secret\nsource: { kinesis: { stream: s } }\nsteps:\n  - sink: { redis: { url: "rediss://c.example.com:6379", command: set, key: event.k, authTokenSecret: prod/token } }\n',
    );
    const t = templateOf(pipeline.spec);
    const secret = (name: string) => `arn:aws:secretsmanager:${ACCOUNT.region}:${ACCOUNT.accountId}:secret:${name}`;
    expect(allows(t, 'secretsmanager:GetSecretValue', secret('prod/token-AbC1eF'))).toBe(true);
    expect(allows(t, 'secretsmanager:GetSecretValue', secret('prod/token-admin-AbC1eF'))).toBe(false);
    expect(allows(t, 'secretsmanager:GetSecretValue', secret('prod/token-Ab'))).toBe(false);
  });
});

describe('ARN parameters', () => {
  it('take an ARN or nothing: StreamArn a Kinesis stream’s, AlarmTopicArn an SNS topic’s', async () => {
    const t = templateOf(
      (await load('version: 1\nname: arns\nsource: { kinesis: { stream: s } }\nsteps:\n  - sink: { stdout: {} }\n'))
        .pipeline.spec,
    );
    const accepts = (parameter: string, value: string) =>
      new RegExp(String(t.Parameters[parameter]?.AllowedPattern)).test(value);
    for (const p of ['StreamArn', 'AlarmTopicArn']) expect(accepts(p, String(t.Parameters[p]?.Default)), p).toBe(true);
    expect(accepts('StreamArn', 'arn:aws:kinesis:eu-west-1:123456789012:stream/clicks')).toBe(true);
    expect(accepts('StreamArn', 'arn:aws-cn:kinesis:cn-north-1:123456789012:stream/clicks')).toBe(true);
    // A name (or another service's ARN) would reach the mapping and the role's statements as it is.
    expect(accepts('StreamArn', 'clicks')).toBe(false);
    expect(accepts('StreamArn', 'arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/x')).toBe(false);
    expect(accepts('AlarmTopicArn', 'arn:aws:sns:eu-west-1:123456789012:ops-alarms')).toBe(true);
    expect(accepts('AlarmTopicArn', 'ops-alarms')).toBe(false);
    expect(accepts('AlarmTopicArn', 'arn:aws:sqs:eu-west-1:123456789012:q')).toBe(false);
  });
});

describe("the stream's KMS key parameter", () => {
  it("takes a key's ARN, a multi-Region key's too, and the AWS-managed alias; no other alias", async () => {
    const t = templateOf(
      (await load('version: 1\nname: kms\nsource: { kinesis: { stream: s } }\nsteps:\n  - sink: { stdout: {} }\n'))
        .pipeline.spec,
    );
    const p = t.Parameters.StreamKmsKeyId as { AllowedPattern: string; Default: string };
    const pattern = new RegExp(p.AllowedPattern);
    expect(pattern.test(p.Default)).toBe(true);
    expect(pattern.test('arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab')).toBe(true);
    expect(pattern.test('arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab')).toBe(true);
    // IAM does not match a key by an alias: neither is accepted where the role names the key.
    expect(pattern.test('arn:aws:kms:eu-west-1:123456789012:alias/mine')).toBe(false);
    expect(pattern.test('alias/mine')).toBe(false);
    // The multi-Region key's ARN is what the role's kms:Decrypt statement names.
    const mrk = 'arn:aws:kms:us-east-1:000000000000:key/mrk-1234abcd12ab34cd56ef1234567890ab';
    const statements = roleStatements(t, { ...created(), parameters: { StreamKmsKeyId: mrk } });
    expect(allowing(statements, { action: 'kms:Decrypt', resource: mrk }).length).toBe(1);
  });
});

describe('synth refuses Redis on this machine in every form the resolver reads as it', () => {
  // Each a host getaddrinfo (or the URL parser) reads as 127.0.0.1 or ::1.
  const HOSTS = ['127.1', '0x7f.1', '0177.0.0.1', '2130706433', '0x7f000001', '127.000.000.001'];
  const SEEDS = ['127.1:7000', '0x7f.1:7000', '[0:0::1]:7000', '0:0::1:7000', 'LOCALHOST.:7000', '2130706433:7000'];

  it('in a URL, at its line and column', async () => {
    const steps = HOSTS.map(
      (h, i) => `  - sink: { redis: { url: "redis://${h}:6379", command: set, key: event.k${i} } }`,
    ).join('\n');
    const { pipeline, file } = await load(
      `version: 1\nname: lb-url\nsource: { kinesis: { stream: s } }\nsteps:\n${steps}\n`,
    );
    const issues = localSettings(pipeline);
    expect(issues.map((i) => i.path)).toEqual(HOSTS.map((_, i) => `/steps/${i}/sink/redis/url`));
    const lines = (await import('node:fs')).readFileSync(file, 'utf8').split('\n');
    for (const [i, issue] of issues.entries()) {
      expect(issue.file).toBe(file);
      // The line of the i-th sink, the column of its url's value.
      expect(issue.line).toBe(5 + i);
      expect(lines[(issue.line as number) - 1]?.slice((issue.column as number) - 1)).toMatch(
        new RegExp(`^"redis://${(HOSTS[i] as string).replaceAll('.', '\\.')}:`),
      );
    }
  });

  it('in cluster seeds, each at its own position', async () => {
    const { pipeline } = await load(`version: 1
name: lb-cluster
source: { kinesis: { stream: s } }
eventTime: event.ts
steps:
  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }, state: { redis: { cluster: [${SEEDS.map((s) => `"${s}"`).join(', ')}, "cache.example.com:7000"] } } }
  - sink: { stdout: {} }
`);
    const issues = localSettings(pipeline);
    expect(issues.map((i) => i.path)).toEqual(SEEDS.map((_, i) => `/steps/0/window/state/redis/cluster/${i}`));
    expect(issues.every((i) => i.line === 6)).toBe(true);
    const columns = issues.map((i) => i.column as number);
    expect([...columns].sort((a, b) => a - b)).toEqual(columns);
  });

  it('accepts hosts that are not this machine, however they look', async () => {
    const { pipeline } = await load(`version: 1
name: lb-remote
source: { kinesis: { stream: s } }
steps:
  - sink: { redis: { url: "rediss://master.cache.euw1.cache.amazonaws.com:6379", command: set, key: event.k } }
  - sink: { redis: { url: "redis://10.0.0.127:6379", command: set, key: event.k } }
  - sink: { redis: { url: "redis://128.0.0.1:6379", command: set, key: event.k } }
  - sink: { http: { url: "https://127.example.com/x" } }
`);
    expect(localSettings(pipeline)).toEqual([]);
  });
});

describe('synth refuses mapping settings Lambda would refuse at deploy', () => {
  /** `tributary synth` in process: its exit status and what it wrote to stderr. */
  async function synthOf(file: string, out: string): Promise<{ code: number; err: string }> {
    let err = '';
    const sink = {
      write: (s: string) => {
        err += s;
        return true;
      },
    };
    const io = { out: { write: () => true }, err: sink } as never as Parameters<typeof main>[1];
    return { code: await main(['synth', file, '--runtime', 'lambda', '--out', out], io), err };
  }
  /** The 1-based line:column of `needle`'s value in `text` (computed from the file). */
  const at = (text: string, needle: string) => {
    const i = text.indexOf(needle) + needle.length;
    const before = text.slice(0, i).split('\n');
    return `${before.length}:${(before.at(-1) as string).length + 1}`;
  };

  const CASES: { source: string; refused: [field: string, value: string][] }[] = [
    // Lambda's ranges: MaximumBatchingWindowInSeconds 0..300, MaximumRecordAgeInSeconds 60..604800, whole seconds.
    {
      source: '{ kinesis: { stream: s, batchingWindow: 10m, maxRecordAge: 30s } }',
      refused: [
        ['batchingWindow', '10m'],
        ['maxRecordAge', '30s'],
      ],
    },
    {
      source: '{ kinesis: { stream: s, batchingWindow: 1500ms, maxRecordAge: 8d } }',
      refused: [
        ['batchingWindow', '1500ms'],
        ['maxRecordAge', '8d'],
      ],
    },
    { source: '{ dynamodbStream: { table: users, maxRecordAge: 59s } }', refused: [['maxRecordAge', '59s']] },
    { source: '{ kinesis: { stream: s, batchingWindow: 300s, maxRecordAge: 7d } }', refused: [] },
    { source: '{ dynamodbStream: { table: users, batchingWindow: 0s, maxRecordAge: 60s } }', refused: [] },
  ];
  for (const { source, refused } of CASES)
    it(`${source}: ${refused.length === 0 ? 'synthesised' : `refused at ${refused.map(([f]) => f).join(', ')}`}`, async () => {
      const yaml = `version: 1\nname: mapping\nsource: ${source}\nsteps:\n  - sink: { stdout: {} }\n`;
      const file = join(dir, `mapping${n++}.yaml`);
      await writeFile(file, yaml);
      const out = join(dir, `out${n++}`);
      const r = await synthOf(file, out);
      if (refused.length === 0) {
        expect(r.code, r.err).toBe(0);
        const t = JSON.parse(await readFile(join(out, 'template.json'), 'utf8'));
        const m = t.Resources.EventSourceMapping.Properties;
        expect(Number.isInteger(m.MaximumBatchingWindowInSeconds) && m.MaximumBatchingWindowInSeconds <= 300).toBe(
          true,
        );
        expect(m.MaximumRecordAgeInSeconds >= 60 && m.MaximumRecordAgeInSeconds <= 604_800).toBe(true);
        return;
      }
      expect(r.code).toBe(1);
      expect(existsSync(join(out, 'template.json'))).toBe(false);
      const lines = r.err.trim().split('\n');
      expect(lines).toHaveLength(refused.length);
      refused.forEach(([field, value], i) => {
        expect(lines[i]).toContain(`${file}:${at(yaml, `${field}: `)}`);
        expect(lines[i]).toContain(`got ${value}`);
      });
    });
});
