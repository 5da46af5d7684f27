// A LeaseTable over the memory lease table of the worker's tests (MemoryLeaseTable's map), with
// the DynamoDB table's conditions: every change of a lease is conditional on its counter (and
// owner) and bumps the counter, a create only where none exists, a delete only at SHARD_END and
// the counter last seen. Leases go in and out as copies, as items do.
import type { CheckpointPosition, Lease, LeaseTable } from '../../src/leaseTypes.js';
import { MemoryLeaseTable } from './memoryLeases.js';

const copy = (l: Lease): Lease => ({
  ...l,
  parentShardIds: [...l.parentShardIds],
  childShardIds: [...l.childShardIds],
});

export class MemoryTableOfLeases implements LeaseTable {
  constructor(readonly store: MemoryLeaseTable = new MemoryLeaseTable()) {}

  async ensure(): Promise<void> {}

  async list(): Promise<Lease[]> {
    return [...this.store.leases.values()].map(copy).sort((a, b) => (a.leaseKey < b.leaseKey ? -1 : 1));
  }

  async create(lease: Lease): Promise<boolean> {
    if (this.store.leases.has(lease.leaseKey)) return false;
    this.store.leases.set(lease.leaseKey, copy(lease));
    return true;
  }

  renew(lease: Lease): Promise<Lease | undefined> {
    return this.update(lease, () => {});
  }

  take(lease: Lease, owner: string): Promise<Lease | undefined> {
    return this.update(lease, (l) => {
      if (l.leaseOwner !== undefined && l.leaseOwner !== owner) l.ownerSwitchesSinceCheckpoint++;
      l.leaseOwner = owner;
    });
  }

  release(lease: Lease): Promise<Lease | undefined> {
    return this.update(lease, (l) => {
      delete l.leaseOwner;
    });
  }

  checkpoint(lease: Lease, position: CheckpointPosition): Promise<Lease | undefined> {
    return this.update(lease, (l) => {
      l.checkpoint = position.sequenceNumber;
      l.checkpointSubSequenceNumber = position.subSequenceNumber;
      l.ownerSwitchesSinceCheckpoint = 0;
    });
  }

  setChildren(lease: Lease, childShardIds: string[]): Promise<Lease | undefined> {
    if (childShardIds.length === 0) return Promise.resolve(lease);
    return this.update(lease, (l) => {
      l.childShardIds = [...childShardIds].sort();
    });
  }

  async delete(lease: Lease): Promise<boolean> {
    const current = this.store.leases.get(lease.leaseKey);
    if (current?.leaseCounter !== lease.leaseCounter || current.checkpoint !== 'SHARD_END') return false;
    this.store.leases.delete(lease.leaseKey);
    return true;
  }

  /** Applies `change` and bumps the counter when the item's counter and owner are what `lease` says. */
  private async update(lease: Lease, change: (l: Lease) => void): Promise<Lease | undefined> {
    const current = this.store.leases.get(lease.leaseKey);
    if (current?.leaseCounter !== lease.leaseCounter || current.leaseOwner !== lease.leaseOwner) return undefined;
    change(current);
    current.leaseCounter++;
    return copy(current);
  }
}
