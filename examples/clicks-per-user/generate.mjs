// Regenerates events.jsonl and users.json (deterministic: same output every run).
// node examples/clicks-per-user/generate.mjs
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
let seed = 42;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const users = Array.from({ length: 50 }, (_, i) => ({
  id: `u${String(i).padStart(3, '0')}`,
  name: `User ${i}`,
  country: pick(['DE', 'FR', 'US', 'JP', 'BR']),
  plan: pick(['free', 'free', 'pro', 'team']),
}));
writeFileSync(join(here, 'users.json'), `${JSON.stringify(users, null, 2)}\n`);

const start = Date.parse('2026-11-01T12:00:00Z');
const lines = [];
let t = start;
for (let i = 0; i < 2000; i++) {
  t += Math.floor(rand() * 400);
  const type = pick(['click', 'click', 'click', 'view', 'view', 'scroll']);
  // A few users are unknown to users.json, a few events come from a bot, some are out of order.
  const userId = rand() < 0.01 ? 'u999' : pick(users).id;
  const ts = rand() < 0.05 ? t - Math.floor(rand() * 5000) : t;
  const e = { type, userId, ts: new Date(ts).toISOString(), page: pick(['/', '/pricing', '/docs', '/blog']) };
  if (type === 'click' && rand() < 0.3) e.amount = Math.round(rand() * 20000) / 100;
  if (rand() < 0.02) e.userAgent = 'crawler-bot/1.0';
  lines.push(JSON.stringify(e));
  if (i === 700) lines.push('{"type": "click", "userId": "u001", "ts": '); // truncated line
  if (i === 1400) lines.push('{"type": "click", "ts": "2026-11-01T12:10:00Z"}'); // no userId
}
writeFileSync(join(here, 'events.jsonl'), `${lines.join('\n')}\n`);
