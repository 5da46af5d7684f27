// The capacity model of window state: how to size a DynamoDB table (or a Redis server) for a
// fleet of shards, computed from what `pnpm bench state` measured on dynalite and redis-server —
// bytes per key in a window item, an item's fixed bytes, a shard-progress item's bytes, and the
// requests a batch, a window range and a shard make (progress writes and reads, open-range reads,
// claims) — never from numbers typed in here. bench/state.mjs measures them (`calibration`) and
// calls `sizing`; `modelCheck` predicts what the measured runs spent on window items from the same
// inputs, so the model is checked against the runs it was calibrated on.
//
// The layout modelled is the one in packages/state/src (ItemWindowStore.ts, dynamodb.ts, redis.ts)
// and packages/core/src/windows/SharedStoreWindows.ts:
//
// - A window range's partial state of one shard is `partitions` items (a key's entry goes to one
//   of them by hash) under the partition key `<ns>|<start>|<end>|<shard>`; a batch rewrites whole
//   every item it touches (1 WCU per started KB of the item). The emitter claims the range
//   (`<ns>|<start>|<end>`, sort key `claim`), seals every shard's items (rewriting each whole) and
//   reads them all (BatchGetItem, strongly consistent: 1 RCU per started 4 KB of each item); a
//   writer's first read of an item that does not exist yet costs 1 RCU.
// - Shard progress: one small item per shard under `progressPartitions` partition keys
//   (`<ns>|shards|<n>` by a hash of the shard id; `<ns>|shards` when 1). Every batch of every
//   shard writes its progress and reads every shard's progress with one strongly consistent Query
//   per partition key (with `progressPartitions` above 1, also one of `<ns>|shards`, where an older
//   layout's items may be); a Query costs 1 RCU per started 4 KB of all it returns, 1 at least.
//   So progress reads grow with shards² in total, and each partition key takes every batch of the
//   fleet: no `progressPartitions` helps once the fleet's batches/s × reads per batch pass
//   3,000.
// - The open-ranges item `<ns>|ranges`: read by every batch (openRanges), written by every shard
//   when it first writes a range.
//
// Assumptions (printed with the table): uniform random keys; tumbling windows of
// `windowSeconds`; a count and a sum per key (the measured aggregate) and key texts `k0`…`k<K-1>`
// (an entry holds the key text twice: add 2 bytes per key character beyond the measured mean);
// shard ordering (ParallelizationFactor 1: one applied position per item); Lambda polls a shard
// about once a second, so batches/s per shard = max(1, events/s ÷ batch size); bursts (a window's
// seal, the writes of the ranges item when a window opens, the claims when it closes) are
// counted as landing in one second; every shard claims each due range at least once.
import { textHash } from '../packages/state/dist/hash.js';
import { fmt, table } from './lib.mjs';

/** DynamoDB's per-partition throughput (a single item can never take more). */
export const PARTITION_WCU = 1_000;
export const PARTITION_RCU = 3_000;
/** The item limit the DynamoDB store enforces (DynamoDB's 400 KB, less a margin: packages/state/src/dynamodb.ts). */
const ITEM_BYTES = 390_000;
/** The Redis store's default item cap (`maxItemBytes`, packages/state/src/redis.ts). */
const REDIS_ITEM_BYTES = 4_000_000;
/** The ranges of the options (windowStateFields, dynamoDbStateSchema). */
const MAX_PARTITIONS = 1_000;
const MAX_PROGRESS_PARTITIONS = 64;
const DEFAULT_PARTITIONS = 4;
/** Items of a shard's window partial under one DynamoDB partition key (ItemWindowStore's ITEMS_PER_KEY). */
const ITEMS_PER_KEY = 16;

/** The hottest of `partitions` items holds this many standard deviations above the mean number of keys. */
const IMBALANCE_SIGMAS = 4;

/** The grid of the sizing table. */
export const GRID = {
  shards: [1, 16, 100, 1_000],
  eventsPerShard: [100, 1_000],
  keysPerWindow: [10_000, 1_000_000],
  partitionKey: ['window key', 'window key, keyIsPartitionKey', 'random'],
};

/** The fleet the redesign's targets name. */
export const FLEET = { shards: 1_000, eventsPerShard: 1_000, keysPerWindow: [10_000, 1_000_000] };

const kb = (bytes) => Math.max(1, Math.ceil(bytes / 1024));
const rcu4 = (bytes) => Math.max(1, Math.ceil(bytes / 4096));

/** Kinesis shard ids of a fresh stream: shardId-000000000000, …; the store hashes them to a progress partition. */
const shardId = (s) => `shardId-${String(s).padStart(12, '0')}`;

/** Shards on the fullest progress partition key, for `shards` shards over `pp` keys (the store's own hash). */
const progressSpread = new Map();
function fullestProgressKey(shards, pp) {
  const id = `${shards}/${pp}`;
  if (!progressSpread.has(id)) {
    const n = new Array(pp).fill(0);
    for (let s = 0; s < shards; s++) n[pp === 1 ? 0 : textHash(shardId(s)) % pp]++;
    progressSpread.set(id, { max: Math.max(...n), counts: n });
  }
  return progressSpread.get(id);
}

/** Mean length of the key texts `k0`…`k<keys-1>`. */
function meanKeyChars(keys) {
  let chars = 0;
  for (let d = 1, lo = 0; lo < keys; d++, lo = 10 ** (d - 1)) chars += (Math.min(keys, 10 ** d) - lo) * (1 + d);
  return chars / keys;
}

/**
 * The model's inputs from the measured runs. `dynamo`: one DynamoDB scaling run (its ledger's
 * window-item and progress-item sizes, its per-batch requests after every shard's first batch, its
 * per-range requests); `redis`: the Redis run of the same shape (MEMORY USAGE of its window items,
 * its progress hash, its progress calls per batch).
 */
export function calibration({ dynamo, redis, ranges }) {
  const w = dynamo.windowItems;
  const st = dynamo.steady;
  const per = (n) => n / dynamo.steadyBatches;
  const perRangeShard = (n) => n / (ranges * dynamo.shards);
  return {
    from: `${dynamo.aggregate}, ${dynamo.shards} shards${dynamo.keyIsPartitionKey ? ', keyIsPartitionKey' : ''}, dynamodb and redis`,
    entryBytes: w.entryBytes / w.entries,
    keyChars: w.keyChars / w.entries,
    itemFixedBytes: (w.bytes - w.entryBytes) / w.items,
    progressItemBytes: dynamo.progressItemBytes,
    progressWritesPerBatch: per(st.progress.writes),
    progressQueriesPerBatch: per(st.progress.queries),
    progressGetsPerBatch: per(st.progress.gets),
    rangesReadsPerBatch: per(st.ranges.gets),
    rangesOpensPerRangeShard: perRangeShard(dynamo.totals.ranges.adds),
    rangesClosesPerRangeShard: perRangeShard(dynamo.totals.ranges.writes - dynamo.totals.ranges.adds),
    claimWritesPerRangeShard: perRangeShard(dynamo.totals.claim.writes),
    claimReadsPerRangeShard: perRangeShard(dynamo.totals.claim.gets),
    redis: {
      entryBytes: redis.memory.entryBytes / redis.memory.entries,
      itemBytes: (redis.memory.usage - redis.memory.entryBytes) / redis.memory.items,
      progressEntryBytes: redis.progressEntryBytes,
      progressCallsPerBatch: redis.progressCalls / redis.steadyBatches,
    },
  };
}

/**
 * One shard's window partial over a window: per batch, the keys seen so far and the keys of the
 * batch (`arrival` 'uniform': e events per batch drawn from `pool` keys; 'once': every key once
 * per window, as the bench's input), the items touched and their WCU.
 */
function windowPartial({ pool, eventsPerWindow, eventsPerBatch, partitions: P, entryBytes, fixedBytes, arrival }) {
  const batches = Math.max(1, Math.round(eventsPerWindow / eventsPerBatch));
  const seen = (j) =>
    arrival === 'once'
      ? Math.min(pool, j * eventsPerBatch)
      : pool * (1 - Math.exp(-Math.min(j * eventsPerBatch, eventsPerWindow) / pool));
  const inBatch = arrival === 'once' ? Math.min(pool, eventsPerBatch) : pool * (1 - Math.exp(-eventsPerBatch / pool));
  const touched = P * (1 - Math.exp(-inBatch / P));
  let sum = 0;
  let last = 0;
  for (let j = 1; j <= batches; j++) {
    last = touched * kb(fixedBytes + (entryBytes * seen(j)) / P);
    sum += last;
  }
  const keys = seen(batches);
  const mean = keys / P;
  return {
    batches,
    keys,
    fullBytes: fixedBytes + entryBytes * mean,
    /** The fullest item: the mean plus IMBALANCE_SIGMAS standard deviations of the hash spread. */
    fullestBytes: fixedBytes + entryBytes * (mean + IMBALANCE_SIGMAS * Math.sqrt(mean)),
    meanBatchWcu: sum / batches,
    lastBatchWcu: last,
    sealWcu: P * kb(fixedBytes + entryBytes * mean),
    /** The emitter's read of the items, and each item's first read by its writer (not found: 1 RCU). */
    emitRcu: P * (1 + rcu4(fixedBytes + entryBytes * mean)),
    emitReadRcu: P * rcu4(fixedBytes + entryBytes * mean),
    /** The share of the partial under one DynamoDB partition key (16 items per key above 16). */
    keyShare: Math.min(P, ITEMS_PER_KEY) / P,
  };
}

/**
 * One row of the sizing table: a fleet, its keys and partitioning → capacity, settings, memory.
 * With `keyIsPartitionKey` each shard's windows have a namespace of their own (`<ns>@<shard>`):
 * its progress, open ranges and claims are one shard's, and the costs are those measured in that
 * layout (`c.perShard`).
 */
function sizeRow(measured, a, { shards: S, eventsPerShard: r, keysPerWindow: K, partitionKey }) {
  const perShardNamespace = partitionKey === 'window key, keyIsPartitionKey';
  const c = perShardNamespace ? measured.perShard : measured;
  /** Shards writing one namespace, and namespaces. */
  const nsShards = perShardNamespace ? 1 : S;
  const namespaces = S / nsShards;
  const W = a.windowSeconds;
  const b = Math.max(1, r / a.batchSize); // batches/s per shard
  const eventsPerBatch = r / b;
  const pool = partitionKey.startsWith('window key') ? K / S : K;
  const entryBytes = c.entryBytes + 2 * (meanKeyChars(K) - c.keyChars);
  const partial = (P) =>
    windowPartial({
      pool,
      eventsPerWindow: r * W,
      eventsPerBatch,
      partitions: P,
      entryBytes,
      fixedBytes: c.itemFixedBytes,
      arrival: 'uniform',
    });
  // The window partial's partition key: its shard's writes during the window, then the seal.
  const windowKeyWcu = (p) => Math.max(b * p.lastBatchWcu, p.sealWcu) * p.keyShare;
  // partitions: the fewest (the default at least) whose fullest item fits in ITEM_BYTES and whose
  // partition key stays under PARTITION_WCU; if no setting up to MAX_PARTITIONS keeps the key
  // under it, the one that takes least.
  let P = DEFAULT_PARTITIONS;
  while (P < MAX_PARTITIONS && partial(P).fullestBytes > ITEM_BYTES) P++;
  const fitsItems = partial(P).fullestBytes <= ITEM_BYTES;
  let best = P;
  for (let p = P; p <= MAX_PARTITIONS; p++) {
    if (windowKeyWcu(partial(p)) <= PARTITION_WCU) {
      best = p;
      break;
    }
    // (a larger setting only where it takes clearly less: the seal costs the same at any setting)
    if (windowKeyWcu(partial(p)) < 0.95 * windowKeyWcu(partial(best))) best = p;
  }
  P = best;
  const w = partial(P);
  const windowFits = fitsItems && windowKeyWcu(w) <= PARTITION_WCU;

  // Shard progress: the fewest progressPartitions whose fullest key stays under both limits.
  const pb = c.progressItemBytes;
  const readsPerSec = nsShards * b * c.progressQueriesPerBatch; // reads of a namespace's progress
  const progress = (pp) => {
    const { max, counts } = fullestProgressKey(nsShards, pp);
    const keyWcu = max * b * c.progressWritesPerBatch * kb(pb);
    // Every read queries each key (and `<ns>|shards` as well when pp > 1).
    const keyRcu = readsPerSec * rcu4(max * pb);
    const legacyRcu = pp > 1 ? readsPerSec : 0;
    const rcu = namespaces * readsPerSec * (counts.reduce((n, k) => n + rcu4(k * pb), 0) + (pp > 1 ? 1 : 0));
    return {
      pp,
      keyWcu,
      keyRcu: Math.max(keyRcu, legacyRcu),
      rcu,
      fits: keyWcu <= PARTITION_WCU && Math.max(keyRcu, legacyRcu) <= PARTITION_RCU,
    };
  };
  let prog;
  for (let pp = 1; pp <= MAX_PROGRESS_PARTITIONS && !prog; pp++) if (progress(pp).fits) prog = progress(pp);
  const progressFits = prog !== undefined;
  if (!prog) {
    // None fits: the setting that takes least from its hottest key (relative to the limits).
    const load = (p) => Math.max(p.keyWcu / PARTITION_WCU, p.keyRcu / PARTITION_RCU);
    prog = progress(1);
    for (let pp = 2; pp <= MAX_PROGRESS_PARTITIONS; pp++) if (load(progress(pp)) < load(prog)) prog = progress(pp);
  }

  // The ranges item (read by every batch; written by every shard as a window opens) and a range's
  // claim (read by every shard as it first writes the range, claimed by the shards that see it due).
  // (the opens land as a window opens, the closes as it is emitted: not in the same second)
  const rangesWcuBurst = nsShards * Math.max(c.rangesOpensPerRangeShard, c.rangesClosesPerRangeShard);
  const rangesWcu = S * (c.rangesOpensPerRangeShard + c.rangesClosesPerRangeShard);
  const rangesRcu = nsShards * b * c.rangesReadsPerBatch; // one namespace's ranges item
  // Every batch claims every due range until it is emitted, so in a stream that goes on each shard
  // tries at least once per range (all but one in vain); the bench's short runs measure fewer, as
  // the end-of-input flush emits their last range from one process.
  const claimWcuBurst = nsShards * Math.max(1, c.claimWritesPerRangeShard);
  const claimRcuBurst = nsShards * c.claimReadsPerRangeShard;

  const wcu =
    S * b * w.meanBatchWcu +
    (S * w.sealWcu) / W +
    S * b * c.progressWritesPerBatch * kb(pb) +
    (rangesWcu + namespaces * claimWcuBurst) / W;
  const rcu =
    prog.rcu +
    S * b * c.progressGetsPerBatch * rcu4(pb) +
    namespaces * rangesRcu +
    (S * w.emitRcu + namespaces * claimRcuBurst) / W;
  const hotW = [
    ['window partial', windowKeyWcu(w)],
    ['progress', prog.keyWcu],
    ['ranges', rangesWcuBurst],
    ['claim', claimWcuBurst],
  ].reduce((m, x) => (x[1] > m[1] ? x : m));
  const hotR = [
    ['window partial', w.emitReadRcu * w.keyShare],
    ['progress', prog.keyRcu],
    ['ranges', rangesRcu],
    ['claim', claimRcuBurst],
  ].reduce((m, x) => (x[1] > m[1] ? x : m));

  // Redis: every shard's partial of a window (a key fed by several shards is in each of them).
  const rd = c.redis;
  const redisEntryBytes = rd.entryBytes + 2 * (meanKeyChars(K) - c.keyChars);
  let redisP = DEFAULT_PARTITIONS;
  while (redisP < MAX_PARTITIONS && c.itemFixedBytes + (redisEntryBytes * w.keys) / redisP > REDIS_ITEM_BYTES) redisP++;
  const redisWindowBytes = S * (redisP * rd.itemBytes + w.keys * redisEntryBytes);
  const redisProgressBytesPerSec = S * b * rd.progressCallsPerBatch * nsShards * rd.progressEntryBytes;

  return {
    shards: S,
    eventsPerShard: r,
    keysPerWindow: K,
    partitionKey,
    batchesPerShard: b,
    keysPerShard: w.keys,
    wcu,
    rcu,
    hotWcu: hotW[1],
    hotWcuKey: hotW[0],
    hotRcu: hotR[1],
    hotRcuKey: hotR[0],
    windowItemsPerRange: S * P,
    windowItemBytes: w.fullBytes,
    partitions: P,
    itemsFit: fitsItems,
    windowKeyFits: windowFits,
    progressPartitions: prog.pp,
    progressFits,
    progressKeyWcu: prog.keyWcu,
    progressKeyRcu: prog.keyRcu,
    progressRcu: prog.rcu,
    redisWindowBytes,
    redisPartitions: redisP,
    redisProgressBytesPerSec,
    withinLimits: fitsItems && hotW[1] <= PARTITION_WCU && hotR[1] <= PARTITION_RCU,
  };
}

/** Every row of the grid (one row for 1 shard, where the partitioning makes no difference). */
export function sizing(c, assumptions, grid = GRID) {
  const rows = [];
  for (const shards of grid.shards)
    for (const eventsPerShard of grid.eventsPerShard)
      for (const keysPerWindow of grid.keysPerWindow)
        for (const partitionKey of shards === 1 ? ['either'] : grid.partitionKey)
          rows.push(sizeRow(c, assumptions, { shards, eventsPerShard, keysPerWindow, partitionKey }));
  return rows;
}

/**
 * The window-item WCU and RCU the model predicts for a measured run (every key once per window,
 * dealt round-robin to the shards; the run's partitions), beside what the run's ledger charged.
 */
export function modelCheck(c, run, { keys, batchSize, ranges, partitions }) {
  const w = windowPartial({
    pool: keys / run.shards,
    eventsPerWindow: keys / run.shards,
    eventsPerBatch: batchSize,
    partitions,
    entryBytes: c.entryBytes,
    fixedBytes: c.itemFixedBytes,
    arrival: 'once',
  });
  return {
    shards: run.shards,
    predictedWcu: run.shards * ranges * (w.batches * w.meanBatchWcu + w.sealWcu),
    measuredWcu: run.totals.window.wcu,
    predictedRcu: run.shards * ranges * w.emitRcu,
    measuredRcu: run.totals.window.rcu,
  };
}

const mb = (bytes) =>
  bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 0)} MB`;
const over = (v, limit) => `${fmt(v)}${v > limit ? ` (${(v / limit).toFixed(1)}x over)` : ''}`;

/** The sizing table's cells, one object per row. */
function sizingCells(rows) {
  return rows.map((r) => ({
    shards: fmt(r.shards),
    'events/s per shard': fmt(r.eventsPerShard),
    'keys per window': r.keysPerWindow >= 1e6 ? `${r.keysPerWindow / 1e6}M` : `${r.keysPerWindow / 1e3}k`,
    'partition key': r.partitionKey,
    'WCU/s': fmt(r.wcu),
    'RCU/s': fmt(r.rcu),
    [`hottest key WCU/s (<= ${fmt(PARTITION_WCU)})`]: `${over(r.hotWcu, PARTITION_WCU)} ${r.hotWcuKey}`,
    [`hottest key RCU/s (<= ${fmt(PARTITION_RCU)})`]: `${over(r.hotRcu, PARTITION_RCU)} ${r.hotRcuKey}`,
    'window items per range': fmt(r.windowItemsPerRange),
    partitions: `${r.partitions}${r.itemsFit ? '' : ' (items over 400 KB)'}`,
    progressPartitions: r.progressFits ? String(r.progressPartitions) : `none fits (${r.progressPartitions} best)`,
    'Redis per window': mb(r.redisWindowBytes),
    'Redis progress reads/s': mb(r.redisProgressBytesPerSec),
  }));
}

/** The sizing table as printed. */
export function sizingTable(rows) {
  const cells = sizingCells(rows);
  return table(cells, Object.keys(cells[0]));
}

/** The same table in Markdown (saved in bench/results/state.json, copied into the README). */
export function sizingMarkdown(rows) {
  const cells = sizingCells(rows);
  const columns = Object.keys(cells[0]);
  const line = (xs) => `| ${xs.join(' | ')} |`;
  return [line(columns), line(columns.map(() => '---')), ...cells.map((c) => line(columns.map((k) => c[k])))].join(
    '\n',
  );
}

/** What one calibration measured, in a line. */
function measuredLine(c) {
  const d = (n, k = 2) => n.toFixed(k);
  return `measured (${c.from}): ${d(c.entryBytes, 1)} B per key entry in a window item (key text ${d(c.keyChars, 1)} chars, stored twice), ${fmt(c.itemFixedBytes)} B fixed per item, ${fmt(c.progressItemBytes)} B per shard-progress item; per batch of a shard: ${d(c.progressWritesPerBatch)} progress writes, ${d(c.progressQueriesPerBatch)} reads of every shard's progress, ${d(c.rangesReadsPerBatch)} reads of the open-ranges item; per range and shard: ${d(c.rangesOpensPerRangeShard)} open-ranges writes as it opens and ${d(c.rangesClosesPerRangeShard)} as it is emitted, ${d(c.claimWritesPerRangeShard)} claim writes (modelled as 1 at least: in a stream that goes on every shard claims each due range once), ${d(c.claimReadsPerRangeShard)} claim reads; redis: ${d(c.redis.entryBytes, 1)} B per key entry, ${fmt(c.redis.itemBytes)} B per item besides its entries (MEMORY USAGE), ${fmt(c.redis.progressEntryBytes)} B per shard in the progress hash, ${d(c.redis.progressCallsPerBatch)} progress calls per batch.`;
}

/** The inputs and assumptions, one line each (printed under the table). */
export function sizingNotes(c, a) {
  return [
    measuredLine(c),
    measuredLine(c.perShard),
    `assumed: ${a.windowSeconds} s tumbling windows; keys uniformly random over the key space (a window holds the distinct keys its events draw: fewer than the key space when a shard has fewer events), key texts k0...k<K-1>; one count and one sum per key; ParallelizationFactor 1; batches of up to ${a.batchSize} records, Lambda polling each shard about once a second: max(1, events/s / ${a.batchSize}) batches/s per shard; Kinesis shard ids of a fresh stream (hashed by the store to a progress key); bursts counted in one second: a shard's seal (its partitions items rewritten at once), the open-ranges writes as a window opens (one per shard), the claims as it closes. "window key, keyIsPartitionKey": the window step declares it (a namespace per shard: <ns>@<shard>); "window key" alone keeps the shared namespace.`,
    `columns: WCU/s, RCU/s: the whole table, by DynamoDB's rules (strongly consistent reads). hottest key: the partition key taking most in its busiest second (window partial <ns>|<start>|<end>|<shard>[~<group>], 16 items per key; progress <ns>|shards[|<n>]; ranges <ns>|ranges; claim <ns>|<start>|<end>). partitions: the fewest (default ${DEFAULT_PARTITIONS} at least) whose fullest item (mean + ${IMBALANCE_SIGMAS} sd of the hash spread) fits in ${fmt(ITEM_BYTES)} B and whose key stays under ${fmt(PARTITION_WCU)} WCU/s (if none up to ${fmt(MAX_PARTITIONS)} does, the one that takes least). progressPartitions: the fewest (1-${MAX_PROGRESS_PARTITIONS}) keeping every progress key under ${fmt(PARTITION_WCU)} WCU/s and ${fmt(PARTITION_RCU)} RCU/s; "none fits": every read queries every key, so each key takes at least (fleet batches/s x reads per batch) RCU/s. Redis per window: every shard's partial of one window (sealed items stay \`ttl\` after emission: multiply by ttl / window + 1 windows kept). Redis progress reads/s: every progress call returns the whole shards hash.`,
  ].join('\n');
}
