export interface SqsEntry {
  Id: string;
  MessageBody: string;
  MessageAttributes?: Record<string, { DataType: string; StringValue?: string }>;
  MessageDeduplicationId?: string;
  MessageGroupId?: string;
}
export function startSqs(options?: {
  fail?: (entry: SqsEntry, attempt: number) => { code: string; senderFault: boolean } | undefined;
}): Promise<{
  endpoint: string;
  queueUrl: string;
  messages: SqsEntry[];
  readonly calls: number;
  close(): Promise<void>;
}>;
