/**
 * The CloudFormation template of `tributary synth` for a pipeline's Lambda function:
 *
 * - the Kinesis stream (or an existing one: parameter `StreamArn`),
 * - the function (code from parameters `CodeBucket`/`CodeKey`), its role and log group,
 * - the event source mapping: ReportBatchItemFailures, BisectBatchOnFunctionError, retries,
 *   maximum record age, on-failure destination (an SQS queue),
 * - the DynamoDB state table with TTL when a window keeps state in `dynamodb`,
 * - a schedule rule invoking the function every minute (ticks close idle windows),
 * - a role whose data statements name the stream, table and queue ARNs (never `"Resource": "*"`
 *   for a data action; only the CloudWatch Logs statements use the function's log group ARN).
 */
import type { PipelineSpec } from '@tributary/core';
import { kindOf } from '@tributary/core/spi';
import { STATE_TABLE_KEYS, stateStoresOf } from '@tributary/state';
import { componentStatements, type Statement } from './iam.js';

/** The event source mapping's settings (the template's defaults otherwise). */
export interface TemplateOptions {
  batchSize?: number;
  maximumRetryAttempts?: number;
  maximumRecordAgeInSeconds?: number;
  parallelizationFactor?: number;
}

/** The CloudFormation template for a pipeline's function. */
export function template(spec: PipelineSpec, options: TemplateOptions = {}): Record<string, unknown> {
  const dynamoTables = stateStoresOf(spec)
    .map((s) => s.store)
    .filter((s): s is { dynamodb: { table: string } } => 'dynamodb' in s)
    .map((s) => s.dynamodb.table);
  const tables = [...new Set(dynamoTables)];
  const streamArn = { 'Fn::If': ['CreateStream', { 'Fn::GetAtt': ['Stream', 'Arn'] }, { Ref: 'StreamArn' }] };
  const tableArn = (t: string) => ({
    'Fn::Sub': `arn:\${AWS::Partition}:dynamodb:\${AWS::Region}:\${AWS::AccountId}:table/${t}`,
  });
  // The function reads the stream its mapping names (a file source: the stream this template makes).
  const deployed: PipelineSpec =
    kindOf(spec.source) === 'file' ? { ...spec, source: { kinesis: { stream: spec.name } } } : spec;
  const storeIndex = new Map(stateStoresOf(spec).map((s, i) => [s.path, i]));
  const statements: Statement[] = [
    ...componentStatements(deployed, (resource, use) => {
      if (use.category === 'source' && resource.type === 'kinesis-stream') return [streamArn];
      if (use.category === 'store' && resource.type === 'dynamodb-table') {
        const t = tables.indexOf(resource.name);
        return t >= 0 && storeIndex.has(use.path) ? [tableArn(resource.name)] : undefined;
      }
      return undefined;
    }),
    {
      Sid: 'FailureQueue',
      Effect: 'Allow',
      Action: ['sqs:SendMessage'],
      Resource: [{ 'Fn::GetAtt': ['FailureQueue', 'Arn'] }],
    },
    {
      Sid: 'Logs',
      Effect: 'Allow' as const,
      Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      Resource: [{ 'Fn::GetAtt': ['LogGroup', 'Arn'] }],
    },
  ];
  const resources: Record<string, unknown> = {
    Stream: {
      Type: 'AWS::Kinesis::Stream',
      Condition: 'CreateStream',
      Properties: { StreamModeDetails: { StreamMode: 'ON_DEMAND' } },
    },
    FailureQueue: { Type: 'AWS::SQS::Queue', Properties: { MessageRetentionPeriod: 1_209_600 } },
    LogGroup: {
      Type: 'AWS::Logs::LogGroup',
      Properties: { LogGroupName: { 'Fn::Sub': `/aws/lambda/\${AWS::StackName}-${spec.name}` }, RetentionInDays: 30 },
    },
    Role: {
      Type: 'AWS::IAM::Role',
      Properties: {
        AssumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        },
        Policies: [{ PolicyName: 'pipeline', PolicyDocument: { Version: '2012-10-17', Statement: statements } }],
      },
    },
    Function: {
      Type: 'AWS::Lambda::Function',
      DependsOn: ['LogGroup'],
      Properties: {
        FunctionName: { 'Fn::Sub': `\${AWS::StackName}-${spec.name}` },
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        Architectures: ['arm64'],
        MemorySize: 1024,
        Timeout: 60,
        Role: { 'Fn::GetAtt': ['Role', 'Arn'] },
        Code: { S3Bucket: { Ref: 'CodeBucket' }, S3Key: { Ref: 'CodeKey' } },
        Environment: {
          Variables: {
            NODE_OPTIONS: '--enable-source-maps',
            // The handler applies window state per partition key when batches of a shard run at once.
            TRIBUTARY_PARALLELIZATION_FACTOR: String(options.parallelizationFactor ?? 1),
          },
        },
      },
    },
    EventSourceMapping: {
      Type: 'AWS::Lambda::EventSourceMapping',
      Properties: {
        EventSourceArn: streamArn,
        FunctionName: { Ref: 'Function' },
        StartingPosition: 'TRIM_HORIZON',
        BatchSize: options.batchSize ?? 500,
        MaximumBatchingWindowInSeconds: 1,
        BisectBatchOnFunctionError: true,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        MaximumRetryAttempts: options.maximumRetryAttempts ?? 10,
        MaximumRecordAgeInSeconds: options.maximumRecordAgeInSeconds ?? 86_400,
        ParallelizationFactor: options.parallelizationFactor ?? 1,
        DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': ['FailureQueue', 'Arn'] } } },
      },
    },
    TickRule: {
      Type: 'AWS::Events::Rule',
      Properties: {
        ScheduleExpression: 'rate(1 minute)',
        State: 'ENABLED',
        Targets: [{ Arn: { 'Fn::GetAtt': ['Function', 'Arn'] }, Id: 'tick', Input: '{"tributary":"tick"}' }],
      },
    },
    TickPermission: {
      Type: 'AWS::Lambda::Permission',
      Properties: {
        Action: 'lambda:InvokeFunction',
        FunctionName: { Ref: 'Function' },
        Principal: 'events.amazonaws.com',
        SourceArn: { 'Fn::GetAtt': ['TickRule', 'Arn'] },
      },
    },
  };
  tables.forEach((t, i) => {
    resources[`StateTable${i}`] = {
      Type: 'AWS::DynamoDB::Table',
      Properties: {
        TableName: t,
        BillingMode: 'PAY_PER_REQUEST',
        ...STATE_TABLE_KEYS,
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      },
    };
  });
  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description: `Tributary pipeline ${spec.name} on AWS Lambda`,
    Parameters: {
      StreamArn: { Type: 'String', Default: '', Description: 'an existing Kinesis stream ARN (empty: create one)' },
      CodeBucket: { Type: 'String', Description: 'S3 bucket holding the bundle (zip of index.mjs)' },
      CodeKey: { Type: 'String', Description: 'S3 key of the bundle zip' },
    },
    Conditions: { CreateStream: { 'Fn::Equals': [{ Ref: 'StreamArn' }, ''] } },
    Resources: resources,
    Outputs: {
      FunctionArn: { Value: { 'Fn::GetAtt': ['Function', 'Arn'] } },
      FailureQueueUrl: { Value: { Ref: 'FailureQueue' } },
    },
  };
}
