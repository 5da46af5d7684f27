/**
 * The worker's lease model: one lease per shard, in a DynamoDB table laid out as the Kinesis
 * Client Library 2.x lays out its own (same attribute names and meanings), so a worker pointed at
 * a KCL application's table resumes from its checkpoints.
 *
 * | attribute                      | type | meaning                                                              |
 * | ------------------------------ | ---- | -------------------------------------------------------------------- |
 * | `leaseKey`                     | S    | hash key: the shard id                                               |
 * | `leaseOwner`                   | S    | the worker id holding it (absent: free)                              |
 * | `leaseCounter`                 | N    | bumped by every renew/take/release: the fencing token                |
 * | `checkpoint`                   | S    | last processed sequence number, or TRIM_HORIZON/LATEST/AT_TIMESTAMP/SHARD_END |
 * | `checkpointSubSequenceNumber`  | N    | the KPL sub-record within `checkpoint` (0 for a plain record)         |
 * | `ownerSwitchesSinceCheckpoint` | N    | owner changes since the last checkpoint                              |
 * | `parentShardId`                | SS   | the shard's parents (absent for an original shard)                   |
 * | `childShardIds`                | SS   | set when the shard is closed and its children are known              |
 * | `startingHashKey`/`endingHashKey` | S | the shard's hash key range                                           |
 *
 * Two attributes of Tributary's own, which KCL ignores (it keeps attributes it does not know), are
 * written with the checkpoint when a window step keeps its state in memory: the checkpoint is then
 * held back to before the oldest record still in an open window, and these say how to replay from
 * it exactly (see the worker's comment):
 *
 * | `tributaryProcessed`           | S    | position (`sequence[:subSequence]`) of the last record processed     |
 * | `tributaryWindowState`         | S    | JSON: the batches since the checkpoint and their watermarks          |
 */

/** The special checkpoints (a sequence number otherwise). */
export type SpecialCheckpoint = 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP' | 'SHARD_END';

export interface Lease {
  /** The shard id. */
  leaseKey: string;
  leaseOwner?: string;
  leaseCounter: number;
  checkpoint: string;
  checkpointSubSequenceNumber: number;
  ownerSwitchesSinceCheckpoint: number;
  parentShardIds: string[];
  childShardIds: string[];
  startingHashKey?: string;
  endingHashKey?: string;
  /** Written with a held-back checkpoint (`tributaryProcessed`, `tributaryWindowState`; see the table above). */
  held?: HeldCheckpoint;
}

/** What a held-back checkpoint carries besides its position: the last record processed and how to replay up to it. */
export interface HeldCheckpoint {
  processed: string;
  state: string;
}

/** A checkpoint to write: a sequence number (with its KPL sub-sequence) or SHARD_END. */
export interface CheckpointPosition {
  sequenceNumber: string | 'SHARD_END';
  subSequenceNumber: number;
  /** Memory window state: the checkpoint is held back; written in the same conditional update (absent: removed). */
  held?: HeldCheckpoint;
}

/**
 * The lease table. Every write is conditional: `renew`, `take`, `release` and `checkpoint`
 * succeed only when the item's `leaseCounter` (and, for renew/release/checkpoint, `leaseOwner`)
 * are still what the caller last saw; they resolve to the lease as written, or `undefined` when
 * the condition failed (someone else moved the lease: the caller has lost it).
 */
export interface LeaseTable {
  /** Creates the table if it is absent (on-demand, point-in-time recovery on) and waits until it is active. */
  ensure(): Promise<void>;
  /** Every lease (a consistent scan). */
  list(): Promise<Lease[]>;
  /** Writes a new lease unless one exists for the shard; whether it was written. */
  create(lease: Lease): Promise<boolean>;
  renew(lease: Lease): Promise<Lease | undefined>;
  /** Takes `lease` for `owner` (free, expired or stolen): counter + 1, ownerSwitchesSinceCheckpoint + 1. */
  take(lease: Lease, owner: string): Promise<Lease | undefined>;
  /** Clears the owner (graceful shutdown), so another worker takes it at once. */
  release(lease: Lease): Promise<Lease | undefined>;
  /** Records a checkpoint, conditional on owner and counter; resets ownerSwitchesSinceCheckpoint. */
  checkpoint(lease: Lease, position: CheckpointPosition): Promise<Lease | undefined>;
  /** Records a closed shard's children (on its lease). */
  setChildren(lease: Lease, childShardIds: string[]): Promise<Lease | undefined>;
  /**
   * Deletes the lease of an ended shard, conditional on its counter and on its checkpoint being
   * SHARD_END; whether it was deleted (false: it changed, or another worker deleted it first —
   * though after an attempt that got no answer, an item found gone counts as deleted).
   */
  delete(lease: Lease): Promise<boolean>;
}

/** The settings of lease coordination, named as KCL names them. */
export interface LeaseSettings {
  /** A lease not renewed within this many ms may be taken by another worker (KCL failoverTimeMillis, default 10 000). */
  failoverTimeMs: number;
  /** How often held leases are renewed (default failoverTimeMs / 3). */
  renewIntervalMs: number;
  /**
   * A worker stops processing and writing for a shard whose lease it has not renewed within
   * failoverTimeMs − this margin, by its own clock (default failoverTimeMs / 5), so that it has
   * stopped before anyone can take the lease.
   */
  fencingMarginMs: number;
  /** Leases stolen from the most loaded worker in one pass (KCL maxLeasesToStealAtOneTime, default 1). */
  maxLeasesToStealAtOneTime: number;
  /** How often the stream's shards are listed for new leases (KCL shardSyncIntervalMillis, default 60 000). */
  shardSyncIntervalMs: number;
  /**
   * How often the leases of ended shards are looked for and deleted (KCL leaseCleanupIntervalMillis,
   * default 60 000): a lease checkpointed at SHARD_END whose parents' leases are gone and whose
   * children's leases all exist and have checkpointed past their start.
   */
  leaseCleanupIntervalMs: number;
}

/**
 * What the worker's shard processing needs from lease coordination (`LeaseCoordinator`): which
 * shards it holds, whether it may still write for one (fencing), and conditional checkpoints.
 */
export interface LeaseHolder {
  /** The worker id, the `leaseOwner` it writes. */
  readonly workerId: string;
  /** Called when a lease is taken (its checkpoint is where to resume) and when one is lost or released. */
  onAcquired(listener: (lease: Lease) => void): void;
  onLost(listener: (shardId: string, why: 'taken' | 'expired' | 'released') => void): void;
  /** The leases held now. */
  held(): Lease[];
  /**
   * True while the lease of `shardId` was renewed within failoverTime − fencingMargin by this
   * worker's clock: processing and sink writes for the shard go on only while it holds.
   */
  mayWrite(shardId: string): boolean;
  /** Conditional checkpoint; false when the lease was lost (the shard's processing must stop). */
  checkpoint(shardId: string, position: CheckpointPosition): Promise<boolean>;
  /** Whether every parent of `lease` has reached SHARD_END (a child starts only then). */
  parentsDone(lease: Lease): boolean;
}

/** The worker's metrics, per shard where it says so (implemented with prom-client in metrics.ts). */
export interface WorkerMetrics {
  recordsIn(shardId: string, n: number): void;
  recordsOut(shardId: string, n: number): void;
  deadLettered(shardId: string, n: number): void;
  late(shardId: string, n: number): void;
  /** Milliseconds behind the stream's tip (GetRecords' MillisBehindLatest). */
  iteratorAge(shardId: string, ms: number): void;
  leasesHeld(n: number): void;
  leaseEvent(kind: 'taken' | 'stolen' | 'lost' | 'released' | 'renewFailed'): void;
  /** Records processed but not yet checkpointed, per shard. */
  checkpointLag(shardId: string, records: number): void;
  call(target: 'state' | 'sink' | 'kinesis' | 'leases', outcome: 'ok' | 'retry' | 'error'): void;
}
