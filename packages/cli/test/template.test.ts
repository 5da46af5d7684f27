// The production template of `tributary synth --runtime lambda`, read as CloudFormation would:
// every variant (each source kind, Redis, state tables, the code from a zip) is checked against
// the CloudFormation resource specification and its own references (support/cfnspec.ts); each
// alarm, output, parameter and condition is checked for the metric, dimension or resource it must
// name. The DeadLettered alarm is checked against the metric line the real handler writes.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { template } from '@tributary/cli/synth';
import { loadPipelineFile, type PipelineSpec } from '@tributary/core';
import { createHandler } from '@tributary/runtime-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { kinesisEventRecord } from '../../../test-support/lambdaEvents.js';
import { validate } from './support/cfnspec.js';

type Resource = {
  Type: string;
  Condition?: string;
  DependsOn?: string[];
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
  Properties: Record<string, unknown>;
};
type Template = {
  Parameters: Record<string, Record<string, unknown>>;
  Conditions: Record<string, unknown>;
  Resources: Record<string, Resource>;
  Outputs: Record<string, { Value: unknown; Condition?: string; Export: { Name: unknown } }>;
};

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trib-template-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A pipeline (validated as `tributary synth` loads it) from a source and steps, in YAML. */
async function pipelineOf(source: string, steps: string, name = 'tpl'): Promise<PipelineSpec> {
  const file = join(dir, `p${n++}.yaml`);
  await writeFile(file, `version: 1\nname: ${name}\nsource: ${source}\neventTime: event.ts\nsteps:\n${steps}`);
  return (await loadPipelineFile(file)).spec;
}

const FILE = '{ file: { path: in.jsonl } }';
const STDOUT = '  - sink: { stdout: {} }\n';
const DYNAMO_WINDOW = (table: string) =>
  `  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }, state: { dynamodb: { table: ${table} } } }\n`;

const templateOf = async (source: string, steps: string, options?: Parameters<typeof template>[1]) =>
  template(await pipelineOf(source, steps), options) as unknown as Template;

/** The role's inline statements, a conditional one (`Fn::If`) as `{ condition, statement }`. */
function statements(t: Template): { condition?: string; Sid: string; Action: string[]; Resource: unknown[] }[] {
  const policies = t.Resources.Role?.Properties.Policies as { PolicyDocument: { Statement: unknown[] } }[];
  return (policies[0]?.PolicyDocument.Statement ?? []).map((s) => {
    const cond = (s as { 'Fn::If'?: [string, Record<string, unknown>, unknown] })['Fn::If'];
    if (cond) {
      expect(cond[2]).toEqual({ Ref: 'AWS::NoValue' });
      return { condition: cond[0], ...(cond[1] as { Sid: string; Action: string[]; Resource: unknown[] }) };
    }
    return s as { Sid: string; Action: string[]; Resource: unknown[] };
  });
}

/** The function's environment variables. */
const variables = (t: Template) =>
  ((t.Resources.Function as Resource).Properties.Environment as { Variables: Record<string, unknown> }).Variables;

describe('the production template', () => {
  it('is valid against the CloudFormation specification for every source kind, Redis, state tables and zipped code; the validator catches mistakes', async () => {
    const variants = await Promise.all([
      templateOf(FILE, DYNAMO_WINDOW('state-a') + STDOUT),
      templateOf('{ kinesis: { stream: clicks, consumer: efo, startingPosition: LATEST } }', STDOUT, { code: 'zip' }),
      templateOf('{ kinesis: { streamArn: "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks" } }', STDOUT),
      templateOf('{ dynamodbStream: { table: users } }', DYNAMO_WINDOW('state-b') + STDOUT),
      templateOf(
        '{ dynamodbStream: { streamArn: "arn:aws:dynamodb:eu-west-1:123456789012:table/users/stream/2026-01-01T00:00:00.000" } }',
        STDOUT,
      ),
      templateOf(
        FILE,
        '  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }, state: { redis: { url: "rediss://cache:6379" } } }\n  - sink: { redis: { url: "rediss://cache:6379", command: set, key: event.key } }\n',
      ),
      templateOf(
        '{ kinesis: { stream: clicks, startingPosition: AT_TIMESTAMP, startingTimestamp: "2026-01-01T00:00:00Z" } }',
        STDOUT,
      ),
    ]);
    for (const t of variants) expect(validate(t as never)).toEqual([]);
    // Each mistake is found: a misspelt property, a missing required one, a reference to nothing,
    // an attribute the type lacks, a condition that is not there.
    const broken = structuredClone(variants[0]) as Template;
    const r = broken.Resources;
    (r.EventSourceMapping as Resource).Properties.BisectBatchOnFunctionErrors = true;
    delete (r.Function as Resource).Properties.Role;
    (r.ErrorsAlarm as Resource).Properties.Threshold = { Ref: 'ErrorThreshold' };
    (r.FailureQueueAlarm as Resource).Properties.Dimensions = [
      { Name: 'QueueName', Value: { 'Fn::GetAtt': ['FailureQueue', 'Name'] } },
    ];
    (r.Stream as Resource).Condition = 'MakeStream';
    broken.Parameters.Unused = { Type: 'String', Default: 'x', AllowedValues: ['y'] };
    expect(validate(broken as never).sort()).toEqual([
      'ErrorsAlarm.Threshold: Ref ErrorThreshold: unknown',
      'EventSourceMapping.BisectBatchOnFunctionErrors: not a property of AWS::Lambda::EventSourceMapping',
      'FailureQueueAlarm.Dimensions[0].Value: Fn::GetAtt FailureQueue.Name: AWS::SQS::Queue has no attribute Name',
      'Function.Role: required',
      // (the alarm's threshold was its one use)
      'Parameters.ErrorsAlarmThreshold: not used',
      'Parameters.Unused: default x not among its allowed values',
      'Parameters.Unused: not used',
      'Stream: Condition MakeStream: no such condition',
    ]);
  });

  it('names nothing itself: CloudFormation generates the stream, queue, tables, function and log group names; the function gets each state table name at its store', async () => {
    const inBranch = (step: string) => `          ${step}`;
    const t = await templateOf(
      FILE,
      `${DYNAMO_WINDOW('state-a')}  - branch:\n      routes:\n        - when: event.n > 0\n          steps:\n${inBranch(DYNAMO_WINDOW('state-a'))}${inBranch(DYNAMO_WINDOW('state-b'))}${STDOUT}`,
    );
    const r = t.Resources;
    expect(r.Stream?.Properties.Name).toBeUndefined();
    expect(r.FailureQueue?.Properties.QueueName).toBeUndefined();
    expect(r.Function?.Properties.FunctionName).toBeUndefined();
    expect(r.Dashboard?.Properties.DashboardName).toBeUndefined();
    // Two tables (two stores share state-a), each with a name of CloudFormation's.
    const tables = Object.entries(r).filter(([, x]) => x.Type === 'AWS::DynamoDB::Table');
    expect(tables.map(([id]) => id)).toEqual(['StateTable0', 'StateTable1']);
    for (const [, x] of tables) expect(x.Properties.TableName).toBeUndefined();
    expect(variables(t)).toMatchObject({
      TRIBUTARY_STATE_TABLE_0: { Ref: 'StateTable0' },
      TRIBUTARY_STATE_TABLE_1: { Ref: 'StateTable1' },
    });
    // The log group follows the generated function name.
    expect(r.LogGroup?.Properties.LogGroupName).toEqual({ 'Fn::Sub': '/aws/lambda/${Function}' });
    // Each store's statements name its own table (the table's ARN first).
    const ofStore = (sid: string) => statements(t).filter((s) => s.Sid.startsWith(sid));
    for (const [store, table] of [
      ['Steps0WindowState', 'StateTable0'],
      ['Steps1BranchRoutes0Steps0WindowState', 'StateTable0'],
      ['Steps1BranchRoutes0Steps1WindowState', 'StateTable1'],
    ] as const) {
      expect(ofStore(store).length, store).toBeGreaterThan(0);
      for (const s of ofStore(store)) expect(s.Resource[0], store).toEqual({ 'Fn::GetAtt': [table, 'Arn'] });
    }
  });

  it('keeps state tables: point-in-time recovery, encryption, TTL, retained on delete and replace; the failure queue is encrypted', async () => {
    const t = await templateOf(FILE, DYNAMO_WINDOW('state-a') + STDOUT);
    const table = t.Resources.StateTable0 as Resource;
    expect(table.DeletionPolicy).toBe('Retain');
    expect(table.UpdateReplacePolicy).toBe('Retain');
    expect(table.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    });
    expect(t.Resources.FailureQueue?.Properties).toEqual({
      MessageRetentionPeriod: 1_209_600,
      SqsManagedSseEnabled: true,
    });
  });

  it('a file or kinesis { stream } source: a stream it creates (KMS, retention), or parameter StreamArn; kms:Decrypt only on a customer key', async () => {
    for (const source of [FILE, '{ kinesis: { stream: clicks } }']) {
      const t = await templateOf(source, STDOUT);
      expect(t.Conditions.CreateStream).toEqual({ 'Fn::Equals': [{ Ref: 'StreamArn' }, ''] });
      expect(t.Parameters.StreamArn).toMatchObject({ Type: 'String', Default: '' });
      expect(t.Parameters.StreamRetentionHours).toMatchObject({
        Type: 'Number',
        Default: 24,
        MinValue: 24,
        MaxValue: 8760,
      });
      expect(t.Parameters.StreamKmsKeyId).toMatchObject({ Default: 'alias/aws/kinesis' });
      const pattern = new RegExp(t.Parameters.StreamKmsKeyId?.AllowedPattern as string);
      expect(pattern.test('alias/aws/kinesis')).toBe(true);
      expect(pattern.test('arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab')).toBe(true);
      expect(pattern.test('alias/mine')).toBe(false);
      expect(t.Resources.Stream).toEqual({
        Type: 'AWS::Kinesis::Stream',
        Condition: 'CreateStream',
        Properties: {
          StreamModeDetails: { StreamMode: 'ON_DEMAND' },
          RetentionPeriodHours: { Ref: 'StreamRetentionHours' },
          StreamEncryption: { EncryptionType: 'KMS', KeyId: { Ref: 'StreamKmsKeyId' } },
        },
      });
      const arn = { 'Fn::If': ['CreateStream', { 'Fn::GetAtt': ['Stream', 'Arn'] }, { Ref: 'StreamArn' }] };
      expect(t.Resources.EventSourceMapping?.Properties.EventSourceArn).toEqual(arn);
      const read = statements(t).find((s) => s.Sid === 'Source');
      expect(read?.Resource).toEqual([arn]);
      expect(read?.Action).toContain('kinesis:GetRecords');
      expect(statements(t).find((s) => s.Sid === 'StreamKey')).toEqual({
        condition: 'StreamCustomerKey',
        Sid: 'StreamKey',
        Effect: 'Allow',
        Action: ['kms:Decrypt'],
        Resource: [{ Ref: 'StreamKmsKeyId' }],
      });
      expect(t.Conditions.StreamCustomerKey).toEqual({
        'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'StreamKmsKeyId' }, 'alias/aws/kinesis'] }],
      });
      expect(t.Resources.StreamConsumer).toBeUndefined();
    }
  });

  it('kinesis { streamArn }: that stream, nothing created; consumer: efo reads through a stream consumer', async () => {
    const arn = 'arn:aws:kinesis:eu-west-1:123456789012:stream/clicks';
    const t = await templateOf(`{ kinesis: { streamArn: "${arn}" } }`, STDOUT);
    expect(t.Resources.Stream).toBeUndefined();
    expect(t.Parameters.StreamArn).toBeUndefined();
    expect(t.Parameters.StreamRetentionHours).toBeUndefined();
    expect(t.Resources.EventSourceMapping?.Properties.EventSourceArn).toBe(arn);
    expect(statements(t).find((s) => s.Sid === 'Source')?.Resource).toEqual([arn]);
    expect(t.Outputs.StreamArn?.Value).toBe(arn);

    const efo = await templateOf(`{ kinesis: { streamArn: "${arn}", consumer: efo } }`, STDOUT);
    expect(efo.Resources.StreamConsumer).toEqual({
      Type: 'AWS::Kinesis::StreamConsumer',
      Properties: { ConsumerName: { Ref: 'AWS::StackName' }, StreamARN: arn },
    });
    const consumerArn = { 'Fn::GetAtt': ['StreamConsumer', 'ConsumerARN'] };
    expect(efo.Resources.EventSourceMapping?.Properties.EventSourceArn).toEqual(consumerArn);
    // The stream's shards are still listed from the stream; the consumer's subscription is on the consumer.
    expect(variables(efo).TRIBUTARY_STREAM_ARN).toBe(arn);
    const s = statements(efo);
    expect(s.find((x) => x.Action.includes('kinesis:SubscribeToShard'))?.Resource).toEqual([consumerArn]);
    expect(efo.Outputs.ConsumerArn?.Value).toEqual(consumerArn);
    // A created stream's consumer is on the stream the stack makes (or StreamArn's).
    const created = await templateOf('{ kinesis: { stream: clicks, consumer: efo } }', STDOUT);
    expect(created.Resources.StreamConsumer?.Properties.StreamARN).toEqual({
      'Fn::If': ['CreateStream', { 'Fn::GetAtt': ['Stream', 'Arn'] }, { Ref: 'StreamArn' }],
    });
  });

  it("dynamodbStream { table }: a mapping on parameter TableStreamArn (CloudFormation cannot look it up); { streamArn }: on that ARN; the source's settings, DynamoDB's defaults", async () => {
    const t = await templateOf('{ dynamodbStream: { table: users, startingPosition: LATEST } }', STDOUT);
    expect(t.Resources.Stream).toBeUndefined();
    expect(t.Parameters.StreamKmsKeyId).toBeUndefined();
    const pattern = new RegExp(t.Parameters.TableStreamArn?.AllowedPattern as string);
    expect(pattern.test('arn:aws:dynamodb:eu-west-1:123456789012:table/users/stream/2026-01-01T00:00:00.000')).toBe(
      true,
    );
    expect(pattern.test('arn:aws:kinesis:eu-west-1:123456789012:stream/users')).toBe(false);
    expect(t.Parameters.TableStreamArn?.Default).toBeUndefined();
    expect(t.Resources.EventSourceMapping?.Properties).toMatchObject({
      EventSourceArn: { Ref: 'TableStreamArn' },
      StartingPosition: 'LATEST',
      BatchSize: 100,
    });
    expect(statements(t).find((s) => s.Sid === 'Source')?.Resource).toEqual([{ Ref: 'TableStreamArn' }]);
    const arn = 'arn:aws:dynamodb:eu-west-1:123456789012:table/users/stream/2026-01-01T00:00:00.000';
    const fixed = await templateOf(`{ dynamodbStream: { streamArn: "${arn}" } }`, STDOUT);
    expect(fixed.Parameters.TableStreamArn).toBeUndefined();
    expect(fixed.Resources.EventSourceMapping?.Properties.EventSourceArn).toBe(arn);
    expect(fixed.Outputs.StreamArn?.Value).toBe(arn);
  });

  it("the mapping's settings are the source's (each option of the pipeline file, in the mapping's unit)", async () => {
    const t = await templateOf(
      '{ kinesis: { stream: clicks, startingPosition: AT_TIMESTAMP, startingTimestamp: "2026-03-01T12:00:00Z", batchSize: 250, batchingWindow: 5s, parallelization: 4, maxRetries: 2, maxRecordAge: 1h, bisect: false } }',
      STDOUT,
    );
    expect(t.Resources.EventSourceMapping?.Properties).toEqual({
      EventSourceArn: { 'Fn::If': ['CreateStream', { 'Fn::GetAtt': ['Stream', 'Arn'] }, { Ref: 'StreamArn' }] },
      FunctionName: { Ref: 'Function' },
      StartingPosition: 'AT_TIMESTAMP',
      StartingPositionTimestamp: Date.UTC(2026, 2, 1, 12) / 1000,
      BatchSize: 250,
      MaximumBatchingWindowInSeconds: 5,
      ParallelizationFactor: 4,
      BisectBatchOnFunctionError: false,
      MaximumRetryAttempts: 2,
      MaximumRecordAgeInSeconds: 3600,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': ['FailureQueue', 'Arn'] } } },
    });
    expect(variables(t).TRIBUTARY_PARALLELIZATION_FACTOR).toBe('4');
    // Defaults: those of Lambda's mapping the README states (and lambda-local applies).
    const d = await templateOf(FILE, STDOUT);
    expect(d.Resources.EventSourceMapping?.Properties).toMatchObject({
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 500,
      MaximumBatchingWindowInSeconds: 1,
      ParallelizationFactor: 1,
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 10,
      MaximumRecordAgeInSeconds: 86_400,
    });
    expect(d.Resources.EventSourceMapping?.Properties.StartingPositionTimestamp).toBeUndefined();
  });

  it('every output a producer or operator needs, each exported as <stack>-<output> and naming its resource', async () => {
    const t = await templateOf('{ kinesis: { stream: clicks, consumer: efo } }', DYNAMO_WINDOW('state-a') + STDOUT);
    const want: Record<string, unknown> = {
      StreamName: { Ref: 'Stream' },
      StreamArn: { 'Fn::If': ['CreateStream', { 'Fn::GetAtt': ['Stream', 'Arn'] }, { Ref: 'StreamArn' }] },
      ConsumerArn: { 'Fn::GetAtt': ['StreamConsumer', 'ConsumerARN'] },
      FunctionName: { Ref: 'Function' },
      FunctionArn: { 'Fn::GetAtt': ['Function', 'Arn'] },
      StateTable0Name: { Ref: 'StateTable0' },
      FailureQueueUrl: { Ref: 'FailureQueue' },
      FailureQueueArn: { 'Fn::GetAtt': ['FailureQueue', 'Arn'] },
      LogGroupName: { Ref: 'LogGroup' },
      DashboardName: { Ref: 'Dashboard' },
    };
    expect(Object.keys(t.Outputs).sort()).toEqual(Object.keys(want).sort());
    for (const [name, value] of Object.entries(want)) {
      expect(t.Outputs[name]?.Value, name).toEqual(value);
      expect(t.Outputs[name]?.Export, name).toEqual({ Name: { 'Fn::Sub': `\${AWS::StackName}-${name}` } });
    }
    // The stream's name exists only when the stack makes the stream.
    expect(t.Outputs.StreamName?.Condition).toBe('CreateStream');
    expect(t.Outputs.StateTable0Name).toMatchObject({ Description: expect.stringContaining('state-a') });
  });

  it('alarms on iterator age, errors, the failure queue depth and dead-lettered records, thresholds as parameters, the optional topic', async () => {
    const t = await templateOf(FILE, STDOUT);
    const fn = [{ Name: 'FunctionName', Value: { Ref: 'Function' } }];
    const alarms: Record<string, Record<string, unknown>> = {
      IteratorAgeAlarm: {
        Namespace: 'AWS/Lambda',
        MetricName: 'IteratorAge',
        Dimensions: fn,
        Statistic: 'Maximum',
        Threshold: { Ref: 'IteratorAgeAlarmMs' },
      },
      ErrorsAlarm: {
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: fn,
        Statistic: 'Sum',
        Threshold: { Ref: 'ErrorsAlarmThreshold' },
      },
      FailureQueueAlarm: {
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['FailureQueue', 'QueueName'] } }],
        Statistic: 'Maximum',
        Threshold: { Ref: 'FailureQueueAlarmThreshold' },
      },
      DeadLetteredAlarm: {
        Namespace: 'Tributary',
        MetricName: 'DeadLettered',
        Dimensions: [{ Name: 'Pipeline', Value: 'tpl' }, ...fn],
        Statistic: 'Sum',
        Threshold: { Ref: 'DeadLetteredAlarmThreshold' },
      },
    };
    const found = Object.entries(t.Resources).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm');
    expect(found.map(([id]) => id).sort()).toEqual(Object.keys(alarms).sort());
    for (const [id, want] of Object.entries(alarms)) {
      const p = t.Resources[id]?.Properties as Record<string, unknown>;
      expect(p, id).toMatchObject({
        ...want,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'notBreaching',
      });
      const threshold = (want.Threshold as { Ref: string }).Ref;
      expect(t.Parameters[threshold]).toMatchObject({ Type: 'Number', MinValue: 0 });
      const topic = { 'Fn::If': ['HasAlarmTopic', [{ Ref: 'AlarmTopicArn' }], { Ref: 'AWS::NoValue' }] };
      expect(p.AlarmActions, id).toEqual(topic);
      expect(p.OKActions, id).toEqual(topic);
    }
    expect(t.Parameters.AlarmTopicArn).toMatchObject({ Type: 'String', Default: '' });
    expect(t.Conditions.HasAlarmTopic).toEqual({ 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'AlarmTopicArn' }, ''] }] });
    expect(t.Parameters.ErrorsAlarmThreshold?.Default).toBe(0);
    expect(t.Parameters.IteratorAgeAlarmMs?.Default).toBe(60_000);
  });

  it("the DeadLettered alarm and the dashboard name the metric the handler writes: its namespace, a dimension set of it, and the values the function's line carries", async () => {
    const spec = await pipelineOf(FILE, '  - filter: event.n > 1\n  - sink: { stdout: {} }\n', 'dl-pipeline');
    const t = template(spec) as unknown as Template;
    const lines: string[] = [];
    vi.stubEnv('AWS_LAMBDA_FUNCTION_NAME', 'stack-Function-ABC123');
    try {
      const file = join(dir, 'dl.yaml');
      await writeFile(
        file,
        'version: 1\nname: dl-pipeline\nsource: { file: { path: in.jsonl } }\nsteps:\n  - filter: event.n > 1\n  - sink: { stdout: {} }\n',
      );
      const handler = createHandler(file, { log: (l) => lines.push(l) });
      // Not JSON: dead-lettered by the handler.
      const bad = kinesisEventRecord({
        shardId: 'shardId-000000000000',
        arn: '',
        sequenceNumber: '1',
        partitionKey: 'k',
        data: Buffer.from('not json').toString('base64'),
        arrivalSeconds: 1,
      });
      expect(await handler({ Records: [bad] } as never)).toEqual({ batchItemFailures: [] });
    } finally {
      vi.unstubAllEnvs();
    }
    const emf = lines.map((l) => JSON.parse(l)).find((l) => l._aws) as {
      _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] };
      [k: string]: unknown;
    };
    expect(emf.DeadLettered).toBe(1);
    const alarm = t.Resources.DeadLetteredAlarm?.Properties as {
      Namespace: string;
      MetricName: string;
      Dimensions: { Name: string; Value: unknown }[];
    };
    const directive = emf._aws.CloudWatchMetrics[0];
    expect(alarm.Namespace).toBe(directive?.Namespace);
    expect(directive?.Metrics.map((m) => m.Name)).toContain(alarm.MetricName);
    expect(directive?.Dimensions).toContainEqual(alarm.Dimensions.map((d) => d.Name));
    // The values: the pipeline's name as written; the function's name is the one Lambda gives it (Ref Function).
    const resolved = alarm.Dimensions.map((d) =>
      JSON.stringify(d.Value) === JSON.stringify({ Ref: 'Function' }) ? 'stack-Function-ABC123' : d.Value,
    );
    expect(resolved).toEqual(alarm.Dimensions.map((d) => emf[d.Name]));
    // The dashboard: its body with the stack's values substituted is JSON naming the same metrics.
    const body = JSON.parse(
      ((t.Resources.Dashboard as Resource).Properties.DashboardBody as { 'Fn::Sub': string })['Fn::Sub']
        .replaceAll('${Function}', 'stack-Function-ABC123')
        .replaceAll('${AWS::Region}', 'eu-west-1'),
    ) as { widgets: { properties: { region: string; metrics: unknown[][] } }[] };
    const metrics = body.widgets.flatMap((w) => w.properties.metrics.map((m) => m.slice(0, 2).join(' ')));
    expect(metrics).toEqual(
      expect.arrayContaining([
        'Tributary RecordsIn',
        'Tributary RecordsOut',
        'Tributary DeadLettered',
        'AWS/Lambda IteratorAge',
        'AWS/Lambda Errors',
        'AWS/Lambda Duration',
      ]),
    );
    for (const w of body.widgets) {
      expect(w.properties.region).toBe('eu-west-1');
      for (const m of w.properties.metrics) {
        const dims = m.slice(2, -1) as string[];
        const pairs = Object.fromEntries(dims.flatMap((_, i) => (i % 2 ? [] : [[dims[i], dims[i + 1]]])));
        if (m[0] === 'Tributary') {
          expect(directive?.Dimensions).toContainEqual(Object.keys(pairs));
          for (const [k, v] of Object.entries(pairs)) expect(v).toBe(emf[k]);
        } else expect(pairs).toEqual({ FunctionName: 'stack-Function-ABC123' });
      }
    }
  });

  it('ticks only a pipeline with a window step (a nested one too), asynchronously and never retried', async () => {
    const windowless = await templateOf(FILE, STDOUT);
    for (const id of ['TickRule', 'TickPermission', 'TickInvokeConfig'])
      expect(windowless.Resources[id]).toBeUndefined();
    const nested = await templateOf(
      FILE,
      `  - branch:\n      routes:\n        - when: event.n > 0\n          steps:\n            - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }, state: { memory: { volatile: true } } }\n${STDOUT}`,
    );
    expect(nested.Resources.TickRule?.Properties).toMatchObject({
      ScheduleExpression: 'rate(1 minute)',
      Targets: [{ Arn: { 'Fn::GetAtt': ['Function', 'Arn'] }, Id: 'tick', Input: '{"tributary":"tick"}' }],
    });
    expect(
      JSON.parse(
        ((nested.Resources.TickRule as Resource).Properties.Targets as { Input: string }[])[0]?.Input as string,
      ),
    ).toEqual({
      tributary: 'tick',
    });
    expect(nested.Resources.TickInvokeConfig).toEqual({
      Type: 'AWS::Lambda::EventInvokeConfig',
      Properties: {
        FunctionName: { Ref: 'Function' },
        Qualifier: '$LATEST',
        MaximumRetryAttempts: 0,
        MaximumEventAgeInSeconds: 60,
      },
    });
    expect(nested.Resources.TickRule?.DependsOn).toEqual(['LogsPolicy']);
    expect(nested.Resources.TickPermission?.Properties).toMatchObject({
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': ['TickRule', 'Arn'] },
    });
  });

  it('reserved concurrency and tracing as parameters; X-Ray writes granted only with tracing on', async () => {
    const t = await templateOf(FILE, STDOUT);
    const f = t.Resources.Function?.Properties as Record<string, unknown>;
    expect(f.ReservedConcurrentExecutions).toEqual({
      'Fn::If': ['HasReservedConcurrency', { Ref: 'ReservedConcurrency' }, { Ref: 'AWS::NoValue' }],
    });
    expect(t.Parameters.ReservedConcurrency).toMatchObject({ Type: 'String', Default: '' });
    const pattern = new RegExp(t.Parameters.ReservedConcurrency?.AllowedPattern as string);
    expect(['', '5', '100'].every((v) => pattern.test(v))).toBe(true);
    expect(['-1', 'x'].some((v) => pattern.test(v))).toBe(false);
    expect(f.TracingConfig).toEqual({ Mode: { Ref: 'Tracing' } });
    expect(t.Parameters.Tracing).toMatchObject({ Default: 'PassThrough', AllowedValues: ['Active', 'PassThrough'] });
    expect(t.Conditions.TracingActive).toEqual({ 'Fn::Equals': [{ Ref: 'Tracing' }, 'Active'] });
    expect(statements(t).find((s) => s.Sid === 'Tracing')).toMatchObject({
      condition: 'TracingActive',
      Action: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
    });
  });

  it('a pipeline using Redis (a store or a sink) runs in the VPC: subnet and security group parameters, VpcConfig, the network interface actions; one without has none', async () => {
    const store = await templateOf(
      FILE,
      '  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }, state: { redis: { url: "rediss://cache:6379" } } }\n' +
        STDOUT,
    );
    const sink = await templateOf(
      FILE,
      '  - sink: { redis: { url: "rediss://cache:6379", command: set, key: event.key } }\n',
    );
    for (const t of [store, sink]) {
      expect(t.Parameters.SubnetIds?.Type).toBe('List<AWS::EC2::Subnet::Id>');
      expect(t.Parameters.SecurityGroupIds?.Type).toBe('List<AWS::EC2::SecurityGroup::Id>');
      expect(t.Resources.Function?.Properties.VpcConfig).toEqual({
        SubnetIds: { Ref: 'SubnetIds' },
        SecurityGroupIds: { Ref: 'SecurityGroupIds' },
      });
      expect(statements(t).find((s) => s.Sid === 'VpcNetworkInterfaces')).toMatchObject({
        Action: expect.arrayContaining([
          'ec2:CreateNetworkInterface',
          'ec2:DeleteNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
        ]),
        Resource: ['*'],
      });
    }
    const none = await templateOf(FILE, DYNAMO_WINDOW('state-a') + STDOUT);
    expect(none.Parameters.SubnetIds).toBeUndefined();
    expect(none.Parameters.SecurityGroupIds).toBeUndefined();
    expect(none.Resources.Function?.Properties.VpcConfig).toBeUndefined();
    expect(statements(none).some((s) => s.Action.some((a) => a.startsWith('ec2:')))).toBe(false);
  });

  it('grants no data action on "*": only the network interfaces and X-Ray, which take no resource; logs on the log group', async () => {
    const t = await templateOf(
      '{ kinesis: { stream: clicks, consumer: efo } }',
      '  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() }, state: { redis: { url: "rediss://cache:6379" } } }\n' +
        DYNAMO_WINDOW('state-a') +
        '  - sink: { kinesis: { stream: out, partitionKey: event.key } }\n',
    );
    for (const s of statements(t)) {
      const star = JSON.stringify(s.Resource).includes('"*"');
      expect(star, s.Sid).toBe(s.Action.every((a) => a.startsWith('ec2:') || a.startsWith('xray:')));
    }
    expect(t.Resources.LogsPolicy?.Properties).toEqual({
      PolicyName: 'logs',
      Roles: [{ Ref: 'Role' }],
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'Logs',
            Effect: 'Allow',
            Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
            Resource: [{ 'Fn::GetAtt': ['LogGroup', 'Arn'] }],
          },
        ],
      },
    });
    // The mapping starts once the function can log.
    expect(t.Resources.EventSourceMapping?.DependsOn).toEqual(['LogsPolicy']);
  });

  it('code from S3 parameters, or (zip) from function.zip beside the template, which `aws cloudformation package` uploads', async () => {
    const s3 = await templateOf(FILE, STDOUT);
    expect(s3.Resources.Function?.Properties.Code).toEqual({
      S3Bucket: { Ref: 'CodeBucket' },
      S3Key: { Ref: 'CodeKey' },
    });
    expect(s3.Parameters.CodeBucket?.Type).toBe('String');
    expect(s3.Parameters.CodeKey?.Type).toBe('String');
    const zip = await templateOf(FILE, STDOUT, { code: 'zip' });
    expect(zip.Resources.Function?.Properties.Code).toBe('function.zip');
    expect(zip.Parameters.CodeBucket).toBeUndefined();
    expect(zip.Parameters.CodeKey).toBeUndefined();
  });
});
