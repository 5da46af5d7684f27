/** A binary min-heap of timed entries (window fire and expiry times). */
export interface Timed {
  at: number;
}

export class MinHeap<T extends Timed> {
  private readonly items: T[] = [];
  get size(): number {
    return this.items.length;
  }
  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((a[p] as T).at <= x.at) break;
      a[i] = a[p] as T;
      i = p;
    }
    a[i] = x;
  }
  peek(): T | undefined {
    return this.items[0];
  }
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && (a[r] as T).at < (a[l] as T).at ? r : l;
        if ((a[c] as T).at >= last.at) break;
        a[i] = a[c] as T;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

/** A binary min-heap under a comparison (positions, which are decimal strings, not numbers). */
export class OrderedHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(x, a[p] as T)) break;
      a[i] = a[p] as T;
      i = p;
    }
    a[i] = x;
  }
  peek(): T | undefined {
    return this.items[0];
  }
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && this.less(a[r] as T, a[l] as T) ? r : l;
        if (!this.less(a[c] as T, last)) break;
        a[i] = a[c] as T;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
