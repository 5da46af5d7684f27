// A loopback server speaking the SQS JSON protocol (AWS JSON 1.0) — enough of SendMessageBatch
// for the SQS sink's tests: it keeps the messages it accepted, and `fail(entry, attempt)` may
// fail an entry (as SQS does in a partial answer) with a code and whether the sender is at fault.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';

export async function startSqs({ fail } = {}) {
  const messages = [];
  const attempts = new Map();
  let calls = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      calls++;
      const target = req.headers['x-amz-target'];
      const reply = (status, obj) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify(obj));
      };
      if (target !== 'AmazonSQS.SendMessageBatch') {
        return reply(400, { __type: 'com.amazonaws.sqs#InvalidAction', message: `unsupported ${target}` });
      }
      const input = JSON.parse(body);
      const Successful = [];
      const Failed = [];
      for (const entry of input.Entries) {
        const key = entry.MessageBody;
        const attempt = (attempts.get(key) ?? 0) + 1;
        attempts.set(key, attempt);
        const failure = fail?.(entry, attempt);
        if (failure) {
          Failed.push({ Id: entry.Id, Code: failure.code, Message: failure.code, SenderFault: failure.senderFault });
          continue;
        }
        messages.push(entry);
        Successful.push({
          Id: entry.Id,
          MessageId: `m${messages.length}`,
          MD5OfMessageBody: createHash('md5').update(entry.MessageBody).digest('hex'),
        });
      }
      reply(200, { Successful, Failed });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    queueUrl: `http://127.0.0.1:${port}/000000000000/test-queue`,
    messages,
    get calls() {
      return calls;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
