/**
 * The CloudFormation template of `tributary synth` for a pipeline's Lambda function. Every name is
 * CloudFormation's (or a parameter's), so two stacks of one pipeline never collide:
 *
 * - the source: a Kinesis stream it creates (a file or `kinesis: { stream }` source; KMS-encrypted,
 *   retention a parameter; parameter `StreamArn` reads an existing one instead), or the stream a
 *   source names by ARN, or a DynamoDB table's stream (parameter `TableStreamArn`: CloudFormation
 *   cannot look it up); `consumer: efo` adds an enhanced fan-out consumer the mapping reads through;
 * - the event source mapping, its settings those of the source (`mappingSettings`, as lambda-local
 *   applies them), ReportBatchItemFailures, an on-failure destination (an SQS queue, SSE on);
 * - the function (code from `function.zip` beside the template with `synth --zip`, which
 *   `aws cloudformation package` uploads; else parameters `CodeBucket`/`CodeKey`), its log group,
 *   optional reserved concurrency, tracing, and VpcConfig when it uses Redis (ElastiCache), whose
 *   `authTokenEnv` variables it sets from NoEcho parameters `RedisAuthToken<i>`;
 * - the DynamoDB state tables (PITR, SSE, TTL, retained on delete and replace), whose generated
 *   names reach the function as `TRIBUTARY_STATE_TABLE_<i>` (the bundle puts each at its store);
 * - a tick schedule for a pipeline with a window step only (asynchronous, never retried);
 * - alarms (iterator age, errors, the on-failure queue's depth, the handler's DeadLettered metric)
 *   with an optional SNS topic, and a dashboard;
 * - a role whose data statements are the components' own declarations (`componentStatements`),
 *   naming the resources' ARNs. The only statements on `"Resource": "*"` are the ones AWS allows
 *   no resource for: the VPC network interfaces (ec2:*NetworkInterface*) and X-Ray's writes.
 */
import type { PipelineSpec } from '@tributary/core';
import { kindOf, walkComponents } from '@tributary/core/spi';
import { STATE_TABLE_KEYS, stateStoresOf } from '@tributary/state';
import { mappingSettings } from '../eventSourceMapping.js';
import { componentStatements } from './iam.js';

export interface TemplateOptions {
  /**
   * Where the function's code comes from: `zip` names `function.zip` beside the template (a local
   * path `aws cloudformation package` uploads and rewrites); `s3` (default) takes parameters
   * `CodeBucket` and `CodeKey`.
   */
  code?: 'zip' | 's3';
}

/** The environment variable naming the state table of index `i` (in `stateTables` order). */
export const stateTableVariable = (i: number) => `TRIBUTARY_STATE_TABLE_${i}`;

/** The file the function's code is zipped into beside the template (`synth --zip`). */
export const FUNCTION_ZIP = 'function.zip';

/** The AWS-managed key of Kinesis: its use needs no IAM permission (a customer key needs kms:Decrypt). */
export const KINESIS_MANAGED_KEY = 'alias/aws/kinesis';

/**
 * The DynamoDB state tables a spec keeps window state in, one per table name (stores naming the
 * same table share it): the template creates each with a generated name, passed to the function
 * in `variable`; `stores` are the JSON pointers of the stores naming it.
 */
export function stateTables(spec: PipelineSpec): { name: string; variable: string; stores: string[] }[] {
  const out: { name: string; variable: string; stores: string[] }[] = [];
  for (const { path, store } of stateStoresOf(spec)) {
    if (!('dynamodb' in store)) continue;
    const name = (store as { dynamodb: { table: string } }).dynamodb.table;
    let t = out.find((x) => x.name === name);
    if (!t) {
      t = { name, variable: stateTableVariable(out.length), stores: [] };
      out.push(t);
    }
    t.stores.push(path);
  }
  return out;
}

/** Whether a spec has a window step (anywhere, a branch's too): only such a pipeline needs ticks. */
export function hasWindow(spec: PipelineSpec): boolean {
  for (const c of walkComponents(spec)) if (c.category === 'step' && c.kind === 'window') return true;
  return false;
}

/** Whether a spec uses Redis (a store or a sink): its function then runs inside the VPC (ElastiCache). */
export function usesRedis(spec: PipelineSpec): boolean {
  for (const c of walkComponents(spec))
    if ((c.category === 'store' || c.category === 'sink') && c.kind === 'redis') return true;
  return false;
}

/**
 * The environment variables Redis stores and sinks read their AUTH token from (`authTokenEnv`), in
 * order of appearance, each once: the template takes each as a NoEcho parameter and sets it on the
 * function (nothing else sets a variable there).
 */
export function redisTokenVariables(spec: PipelineSpec): string[] {
  const out: string[] = [];
  for (const c of walkComponents(spec)) {
    if ((c.category !== 'store' && c.category !== 'sink') || c.kind !== 'redis') continue;
    const name = (c.spec as { authTokenEnv?: unknown } | undefined)?.authTokenEnv;
    if (typeof name === 'string' && !out.includes(name)) out.push(name);
  }
  return out;
}

const NO_VALUE = { Ref: 'AWS::NoValue' };
const getAtt = (resource: string, attribute: string) => ({ 'Fn::GetAtt': [resource, attribute] });
const exportName = (output: string) => ({ 'Fn::Sub': `\${AWS::StackName}-${output}` });

/** What the function consumes, as the template names it. */
interface SourcePlan {
  /** `create`: the template makes the stream (unless parameter StreamArn names one); `arn`: a fixed ARN; `parameter`: TableStreamArn. */
  mode: 'create' | 'arn' | 'parameter';
  kind: 'kinesis' | 'dynamodbStream';
  /** The stream's ARN (a reference, or the ARN itself). */
  streamArn: unknown;
  /** The mapping's EventSourceArn: the stream's, or the enhanced fan-out consumer's. */
  eventSourceArn: unknown;
  efo: boolean;
}

function sourcePlan(spec: PipelineSpec): SourcePlan {
  const m = mappingSettings(spec);
  const kind = kindOf(spec.source);
  let plan: Omit<SourcePlan, 'eventSourceArn'>;
  if (m.kind === 'dynamodbStream')
    plan =
      m.streamArn !== undefined
        ? { mode: 'arn', kind: m.kind, streamArn: m.streamArn, efo: false }
        : { mode: 'parameter', kind: m.kind, streamArn: { Ref: 'TableStreamArn' }, efo: false };
  else if (kind === 'kinesis' && m.streamArn !== undefined)
    plan = { mode: 'arn', kind: m.kind, streamArn: m.streamArn, efo: m.efo };
  else
    plan = {
      mode: 'create',
      kind: 'kinesis',
      streamArn: { 'Fn::If': ['CreateStream', getAtt('Stream', 'Arn'), { Ref: 'StreamArn' }] },
      efo: m.efo,
    };
  return { ...plan, eventSourceArn: plan.efo ? getAtt('StreamConsumer', 'ConsumerARN') : plan.streamArn };
}

/** A CloudWatch alarm on one metric, notifying the optional topic. */
function alarm(description: string, metric: Record<string, unknown>): Record<string, unknown> {
  return {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: description,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      ...metric,
      AlarmActions: { 'Fn::If': ['HasAlarmTopic', [{ Ref: 'AlarmTopicArn' }], NO_VALUE] },
      OKActions: { 'Fn::If': ['HasAlarmTopic', [{ Ref: 'AlarmTopicArn' }], NO_VALUE] },
    },
  };
}

/**
 * The dashboard's body (a JSON string for Fn::Sub: `${Function}` and `${AWS::Region}` are the
 * stack's): the handler's records in/out/dead-lettered, and the function's iterator age, errors
 * and duration.
 */
function dashboardBody(pipeline: string): string {
  const handlerMetric = (name: string) => [
    'Tributary',
    name,
    'Pipeline',
    pipeline,
    'FunctionName',
    `\${Function}`,
    { stat: 'Sum' },
  ];
  const lambda = (name: string, stat: string) => ['AWS/Lambda', name, 'FunctionName', `\${Function}`, { stat }];
  const widget = (x: number, y: number, title: string, metrics: unknown[]) => ({
    type: 'metric',
    x,
    y,
    width: 12,
    height: 6,
    properties: { title, region: `\${AWS::Region}`, view: 'timeSeries', period: 60, metrics },
  });
  return JSON.stringify({
    widgets: [
      widget(0, 0, 'Records', [handlerMetric('RecordsIn'), handlerMetric('RecordsOut'), handlerMetric('DeadLettered')]),
      widget(12, 0, 'Iterator age (ms)', [lambda('IteratorAge', 'Maximum')]),
      widget(0, 6, 'Errors', [lambda('Errors', 'Sum'), lambda('Throttles', 'Sum')]),
      widget(12, 6, 'Duration (ms)', [lambda('Duration', 'Average'), lambda('Duration', 'Maximum')]),
    ],
  });
}

/** The CloudFormation template for a pipeline's function. */
export function template(spec: PipelineSpec, options: TemplateOptions = {}): Record<string, unknown> {
  const mapping = mappingSettings(spec);
  const source = sourcePlan(spec);
  const tables = stateTables(spec);
  const windowed = hasWindow(spec);
  const redis = usesRedis(spec);
  const zip = options.code === 'zip';
  const tableOf = new Map(tables.flatMap((t, i) => t.stores.map((path) => [path, { name: t.name, index: i }])));
  // The function reads the stream its mapping names (a file source: the stream this template makes).
  const deployed: PipelineSpec =
    kindOf(spec.source) === 'file' ? { ...spec, source: { kinesis: { stream: spec.name } } } : spec;

  const dataStatements = componentStatements(deployed, (resource, use) => {
    if (use.category === 'source') {
      if (resource.type === 'kinesis-stream' || resource.type === 'dynamodb-stream') return [source.streamArn];
      if (resource.type === 'kinesis-consumer' && source.efo) return [getAtt('StreamConsumer', 'ConsumerARN')];
    }
    if (use.category === 'store' && resource.type === 'dynamodb-table') {
      const t = tableOf.get(use.path);
      if (t === undefined || t.name !== resource.name) return undefined;
      const arn = getAtt(`StateTable${t.index}`, 'Arn');
      return resource.indexes ? [arn, { 'Fn::Sub': `\${StateTable${t.index}.Arn}/index/*` }] : [arn];
    }
    return undefined;
  });
  const statements: unknown[] = [
    ...dataStatements,
    {
      Sid: 'FailureQueue',
      Effect: 'Allow',
      Action: ['sqs:SendMessage'],
      Resource: [getAtt('FailureQueue', 'Arn')],
    },
  ];
  if (source.kind === 'kinesis')
    // A customer key encrypting the stream: reading needs kms:Decrypt on it (the AWS-managed key needs nothing).
    statements.push({
      'Fn::If': [
        'StreamCustomerKey',
        { Sid: 'StreamKey', Effect: 'Allow', Action: ['kms:Decrypt'], Resource: [{ Ref: 'StreamKmsKeyId' }] },
        NO_VALUE,
      ],
    });
  if (redis)
    // Lambda's network interfaces in the VPC (AWSLambdaVPCAccessExecutionRole's actions): EC2 takes no resource for them.
    statements.push({
      Sid: 'VpcNetworkInterfaces',
      Effect: 'Allow',
      Action: [
        'ec2:AssignPrivateIpAddresses',
        'ec2:CreateNetworkInterface',
        'ec2:DeleteNetworkInterface',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeSubnets',
        'ec2:UnassignPrivateIpAddresses',
      ],
      Resource: ['*'],
    });
  statements.push({
    'Fn::If': [
      'TracingActive',
      // X-Ray's writes take no resource.
      {
        Sid: 'Tracing',
        Effect: 'Allow',
        Action: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
        Resource: ['*'],
      },
      NO_VALUE,
    ],
  });

  const parameters: Record<string, unknown> = {};
  const conditions: Record<string, unknown> = {
    HasAlarmTopic: { 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'AlarmTopicArn' }, ''] }] },
    HasReservedConcurrency: { 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'ReservedConcurrency' }, ''] }] },
    TracingActive: { 'Fn::Equals': [{ Ref: 'Tracing' }, 'Active'] },
  };
  const resources: Record<string, unknown> = {};
  const outputs: Record<string, { Description: string; Value: unknown; Condition?: string }> = {};

  // ---- the source ----
  if (source.mode === 'create') {
    parameters.StreamArn = {
      Type: 'String',
      Default: '',
      // An ARN, as the mapping and the role's statements take it (a stream's name would fail both at deploy).
      AllowedPattern: '^(|arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\\d{12}:stream/[A-Za-z0-9_.-]{1,128})$',
      Description: 'an existing Kinesis stream ARN to read (empty: the stack creates one)',
    };
    parameters.StreamRetentionHours = {
      Type: 'Number',
      Default: 24,
      MinValue: 24,
      MaxValue: 8760,
      Description: 'how long the created stream keeps records (hours)',
    };
    conditions.CreateStream = { 'Fn::Equals': [{ Ref: 'StreamArn' }, ''] };
    resources.Stream = {
      Type: 'AWS::Kinesis::Stream',
      Condition: 'CreateStream',
      Properties: {
        StreamModeDetails: { StreamMode: 'ON_DEMAND' },
        RetentionPeriodHours: { Ref: 'StreamRetentionHours' },
        StreamEncryption: { EncryptionType: 'KMS', KeyId: { Ref: 'StreamKmsKeyId' } },
      },
    };
    outputs.StreamName = {
      Description: 'the stream producers write to',
      Value: { Ref: 'Stream' },
      Condition: 'CreateStream',
    };
  }
  if (source.mode === 'parameter')
    parameters.TableStreamArn = {
      Type: 'String',
      AllowedPattern: '^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\\d{12}:table/[A-Za-z0-9_.-]{3,255}/stream/.+$',
      Description: `the stream ARN of table ${mapping.name} (its LatestStreamArn; streams enabled)`,
    };
  if (source.kind === 'kinesis') {
    parameters.StreamKmsKeyId = {
      Type: 'String',
      Default: KINESIS_MANAGED_KEY,
      // A key's ARN (a multi-Region key's id starts mrk-): IAM names a key by its key ARN, not an alias.
      AllowedPattern: '^(alias/aws/kinesis|arn:aws[a-z-]*:kms:[a-z0-9-]+:\\d{12}:key/(mrk-)?[0-9a-f-]+)$',
      Description: `the KMS key encrypting the stream: ${KINESIS_MANAGED_KEY} (AWS-managed) or a customer key's ARN (the role gets kms:Decrypt on it)`,
    };
    conditions.StreamCustomerKey = { 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'StreamKmsKeyId' }, KINESIS_MANAGED_KEY] }] };
  }
  outputs.StreamArn = { Description: 'the stream the function reads', Value: source.streamArn };
  if (source.efo) {
    resources.StreamConsumer = {
      Type: 'AWS::Kinesis::StreamConsumer',
      // One per stack: the stack name (at most 128 characters of letters, digits and hyphens) fits a consumer's.
      Properties: { ConsumerName: { Ref: 'AWS::StackName' }, StreamARN: source.streamArn },
    };
    outputs.ConsumerArn = {
      Description: 'the enhanced fan-out consumer the mapping reads through',
      Value: getAtt('StreamConsumer', 'ConsumerARN'),
    };
  }

  // ---- code, function, logs ----
  if (!zip) {
    parameters.CodeBucket = {
      Type: 'String',
      Description: 'S3 bucket holding the function zip (index.mjs and files/)',
    };
    parameters.CodeKey = { Type: 'String', Description: 'S3 key of the function zip' };
  }
  parameters.ReservedConcurrency = {
    Type: 'String',
    Default: '',
    AllowedPattern: '^[0-9]*$',
    Description: 'reserved concurrent executions of the function (empty: none reserved)',
  };
  parameters.Tracing = {
    Type: 'String',
    Default: 'PassThrough',
    AllowedValues: ['Active', 'PassThrough'],
    Description: 'X-Ray tracing of the function',
  };
  if (redis) {
    parameters.SubnetIds = {
      Type: 'List<AWS::EC2::Subnet::Id>',
      Description:
        'subnets of the VPC holding the Redis (ElastiCache) cluster; they need a route to the AWS services the pipeline calls (NAT or VPC endpoints)',
    };
    parameters.SecurityGroupIds = {
      Type: 'List<AWS::EC2::SecurityGroup::Id>',
      Description: "security groups of the function: the cluster's must admit them on its port",
    };
    redisTokenVariables(spec).forEach((variable, i) => {
      parameters[`RedisAuthToken${i}`] = {
        Type: 'String',
        NoEcho: true,
        MinLength: 1,
        Description: `the Redis AUTH token the function reads from ${variable} (authTokenEnv; authTokenSecret keeps it out of the function's configuration)`,
      };
    });
  }
  const variables: Record<string, unknown> = {
    NODE_OPTIONS: '--enable-source-maps',
    // The handler applies window state per partition key when batches of a shard run at once.
    TRIBUTARY_PARALLELIZATION_FACTOR: String(mapping.parallelizationFactor),
    // The stream whose shards the handler lists at init.
    TRIBUTARY_STREAM_ARN: source.streamArn,
  };
  tables.forEach((t, i) => {
    variables[t.variable] = { Ref: `StateTable${i}` };
  });
  if (redis)
    redisTokenVariables(spec).forEach((variable, i) => {
      variables[variable] = { Ref: `RedisAuthToken${i}` };
    });
  resources.Role = {
    Type: 'AWS::IAM::Role',
    Properties: {
      AssumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      },
      Policies: [{ PolicyName: 'pipeline', PolicyDocument: { Version: '2012-10-17', Statement: statements } }],
    },
  };
  resources.Function = {
    Type: 'AWS::Lambda::Function',
    Properties: {
      Description: `Tributary pipeline ${spec.name}`,
      Runtime: 'nodejs22.x',
      Handler: 'index.handler',
      Architectures: ['arm64'],
      MemorySize: 1024,
      Timeout: 60,
      Role: getAtt('Role', 'Arn'),
      Code: zip ? FUNCTION_ZIP : { S3Bucket: { Ref: 'CodeBucket' }, S3Key: { Ref: 'CodeKey' } },
      Environment: { Variables: variables },
      TracingConfig: { Mode: { Ref: 'Tracing' } },
      ReservedConcurrentExecutions: { 'Fn::If': ['HasReservedConcurrency', { Ref: 'ReservedConcurrency' }, NO_VALUE] },
      ...(redis
        ? { VpcConfig: { SubnetIds: { Ref: 'SubnetIds' }, SecurityGroupIds: { Ref: 'SecurityGroupIds' } } }
        : {}),
    },
  };
  // The function's name is generated, so its log group follows it; the role cannot create log
  // groups, so nothing else creates this one first.
  resources.LogGroup = {
    Type: 'AWS::Logs::LogGroup',
    Properties: { LogGroupName: { 'Fn::Sub': `/aws/lambda/\${Function}` }, RetentionInDays: 30 },
  };
  resources.LogsPolicy = {
    Type: 'AWS::IAM::Policy',
    Properties: {
      PolicyName: 'logs',
      Roles: [{ Ref: 'Role' }],
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'Logs',
            Effect: 'Allow',
            Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
            Resource: [getAtt('LogGroup', 'Arn')],
          },
        ],
      },
    },
  };

  // ---- the event source mapping and its on-failure destination ----
  // Not retained: its messages point at records in the stream (shard, sequence numbers), which
  // the stack's stream no longer holds once the stack is gone.
  resources.FailureQueue = {
    Type: 'AWS::SQS::Queue',
    Properties: { MessageRetentionPeriod: 1_209_600, SqsManagedSseEnabled: true },
  };
  resources.EventSourceMapping = {
    Type: 'AWS::Lambda::EventSourceMapping',
    // Its first invocations log.
    DependsOn: ['LogsPolicy'],
    Properties: {
      EventSourceArn: source.eventSourceArn,
      FunctionName: { Ref: 'Function' },
      StartingPosition: mapping.startingPosition,
      ...(mapping.startingPositionTimestamp !== undefined
        ? { StartingPositionTimestamp: mapping.startingPositionTimestamp }
        : {}),
      BatchSize: mapping.batchSize,
      MaximumBatchingWindowInSeconds: mapping.maximumBatchingWindowInSeconds,
      ParallelizationFactor: mapping.parallelizationFactor,
      BisectBatchOnFunctionError: mapping.bisectBatchOnFunctionError,
      MaximumRetryAttempts: mapping.maximumRetryAttempts,
      MaximumRecordAgeInSeconds: mapping.maximumRecordAgeInSeconds,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: { OnFailure: { Destination: getAtt('FailureQueue', 'Arn') } },
    },
  };

  // ---- state ----
  tables.forEach((t, i) => {
    resources[`StateTable${i}`] = {
      Type: 'AWS::DynamoDB::Table',
      // Window state and the claims that make output exactly-once: kept when the stack goes or the table is replaced.
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        BillingMode: 'PAY_PER_REQUEST',
        ...STATE_TABLE_KEYS,
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
      },
    };
    outputs[`StateTable${i}Name`] = {
      Description: `the window state table (${t.name} in the pipeline file; ${t.stores.join(', ')})`,
      Value: { Ref: `StateTable${i}` },
    };
  });

  // ---- ticks ----
  if (windowed) {
    resources.TickRule = {
      Type: 'AWS::Events::Rule',
      // Its first ticks log.
      DependsOn: ['LogsPolicy'],
      Properties: {
        Description: 'closes windows by processing time when no record arrives',
        ScheduleExpression: 'rate(1 minute)',
        State: 'ENABLED',
        Targets: [{ Arn: getAtt('Function', 'Arn'), Id: 'tick', Input: '{"tributary":"tick"}' }],
      },
    };
    resources.TickPermission = {
      Type: 'AWS::Lambda::Permission',
      Properties: {
        Action: 'lambda:InvokeFunction',
        FunctionName: { Ref: 'Function' },
        Principal: 'events.amazonaws.com',
        SourceArn: getAtt('TickRule', 'Arn'),
      },
    };
    // A tick is asynchronous: a failed or late one is not retried (the next comes a minute later).
    resources.TickInvokeConfig = {
      Type: 'AWS::Lambda::EventInvokeConfig',
      Properties: {
        FunctionName: { Ref: 'Function' },
        Qualifier: '$LATEST',
        MaximumRetryAttempts: 0,
        MaximumEventAgeInSeconds: 60,
      },
    };
  }

  // ---- alarms and dashboard ----
  parameters.AlarmTopicArn = {
    Type: 'String',
    Default: '',
    AllowedPattern: '^(|arn:aws[a-z-]*:sns:[a-z0-9-]+:\\d{12}:[A-Za-z0-9_-]{1,256})$',
    Description: 'an SNS topic the alarms notify, by ARN (empty: none)',
  };
  parameters.IteratorAgeAlarmMs = {
    Type: 'Number',
    Default: 60_000,
    MinValue: 0,
    Description: 'alarm when the oldest record of a batch is older than this (ms) for 5 minutes',
  };
  parameters.ErrorsAlarmThreshold = {
    Type: 'Number',
    Default: 0,
    MinValue: 0,
    Description: 'alarm when the function fails more invocations than this in a minute',
  };
  parameters.FailureQueueAlarmThreshold = {
    Type: 'Number',
    Default: 0,
    MinValue: 0,
    Description: 'alarm when the on-failure queue holds more messages than this',
  };
  parameters.DeadLetteredAlarmThreshold = {
    Type: 'Number',
    Default: 0,
    MinValue: 0,
    Description: 'alarm when more records than this are dead-lettered in a minute',
  };
  const functionDimension = [{ Name: 'FunctionName', Value: { Ref: 'Function' } }];
  resources.IteratorAgeAlarm = alarm('records wait in the stream: the function falls behind', {
    Namespace: 'AWS/Lambda',
    MetricName: 'IteratorAge',
    Dimensions: functionDimension,
    Statistic: 'Maximum',
    Period: 60,
    EvaluationPeriods: 5,
    Threshold: { Ref: 'IteratorAgeAlarmMs' },
  });
  resources.ErrorsAlarm = alarm(
    'invocations failed (each failed batch is retried, then sent to the on-failure queue)',
    {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: functionDimension,
      Statistic: 'Sum',
      Period: 60,
      EvaluationPeriods: 1,
      Threshold: { Ref: 'ErrorsAlarmThreshold' },
    },
  );
  resources.FailureQueueAlarm = alarm(
    'batches exhausted their retries: their records are named in the on-failure queue',
    {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: getAtt('FailureQueue', 'QueueName') }],
      Statistic: 'Maximum',
      Period: 60,
      EvaluationPeriods: 1,
      Threshold: { Ref: 'FailureQueueAlarmThreshold' },
    },
  );
  // The handler's metric line (EMF): namespace Tributary, dimensions Pipeline and FunctionName.
  resources.DeadLetteredAlarm = alarm("records were dead-lettered (the pipeline's deadLetter output)", {
    Namespace: 'Tributary',
    MetricName: 'DeadLettered',
    Dimensions: [{ Name: 'Pipeline', Value: spec.name }, ...functionDimension],
    Statistic: 'Sum',
    Period: 60,
    EvaluationPeriods: 1,
    Threshold: { Ref: 'DeadLetteredAlarmThreshold' },
  });
  resources.Dashboard = {
    Type: 'AWS::CloudWatch::Dashboard',
    Properties: { DashboardBody: { 'Fn::Sub': dashboardBody(spec.name) } },
  };

  Object.assign(outputs, {
    FunctionName: { Description: 'the function', Value: { Ref: 'Function' } },
    FunctionArn: { Description: "the function's ARN", Value: getAtt('Function', 'Arn') },
    FailureQueueUrl: {
      Description: 'the on-failure destination (batches that exhausted their retries)',
      Value: { Ref: 'FailureQueue' },
    },
    FailureQueueArn: { Description: "the on-failure destination's ARN", Value: getAtt('FailureQueue', 'Arn') },
    LogGroupName: { Description: "the function's log group", Value: { Ref: 'LogGroup' } },
    DashboardName: { Description: "the pipeline's dashboard", Value: { Ref: 'Dashboard' } },
  });
  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description: `Tributary pipeline ${spec.name} on AWS Lambda`,
    Parameters: parameters,
    Conditions: conditions,
    Resources: resources,
    Outputs: Object.fromEntries(
      Object.entries(outputs).map(([name, o]) => [name, { ...o, Export: { Name: exportName(name) } }]),
    ),
  };
}
