/** One flow through a set of shared resources (NICs, a budget). */
export interface Flow {
  /** Indices into the capacity array; a flow crossing no finite resource is bounded only by its cap. */
  resources: readonly number[];
  /** Guaranteed amount (must be feasible); 0 for plain max-min fairness. */
  floor: number;
  /** Upper bound; Infinity for none. */
  cap: number;
}

/** Two allocations closer than this (relative) count as equal when checking capacities. */
export const CAPACITY_TOLERANCE = 1e-9;

/**
 * Max-min fair allocation with floors and caps, by progressive filling: a common
 * "water level" L rises; each unfrozen flow holds max(floor, L); a flow freezes
 * when it reaches its cap or when a resource it crosses fills up. The result is
 * the allocation where no flow can get more without taking from one that has
 * less (or that is at its floor).
 *
 * Event-driven on L (floors reached, caps reached, resources filling), with an
 * indexed heap of the level at which each resource fills: O((F·k + R) log R)
 * for F flows crossing k resources each, and no per-event allocation, so it can
 * run on every start, end and dirty-rate change. Throws if the floors alone do
 * not fit.
 */
export function waterFill(capacities: ArrayLike<number>, flows: readonly Flow[]): Float64Array {
  const n = flows.length;
  const m = capacities.length;
  const alloc = new Float64Array(n);
  // 0 = waiting for L to reach its floor, 1 = rising with L, 2 = frozen.
  const state = new Uint8Array(n);
  const base = new Float64Array(m); // held by frozen and not-yet-rising flows
  const rising = new Int32Array(m);
  const full = new Uint8Array(m);

  // Flows per resource, compressed: members[start[r] .. start[r+1]).
  const start = new Int32Array(m + 1);
  for (let i = 0; i < n; i++) for (const r of (flows[i] as Flow).resources) start[r + 1]!++;
  for (let r = 0; r < m; r++) start[r + 1]! += start[r]!;
  const fill = start.slice(0, m);
  const members = new Int32Array(start[m]!);
  for (let i = 0; i < n; i++) for (const r of (flows[i] as Flow).resources) members[fill[r]!++] = i;

  const floors = new Float64Array(n);
  const caps = new Float64Array(n);
  let waiting = 0;
  let capped = 0;
  for (let i = 0; i < n; i++) {
    const f = flows[i] as Flow;
    const cap = Math.max(0, f.cap);
    const floor = Math.min(Math.max(0, f.floor), cap);
    floors[i] = floor;
    caps[i] = cap;
    alloc[i] = floor;
    for (const r of f.resources) base[r]! += floor;
    if (floor >= cap) state[i] = 2;
    else if (floor > 0) waiting++;
    else state[i] = 1;
    if (state[i] !== 2 && cap < Infinity) capped++;
  }
  for (let r = 0; r < m; r++) {
    const c = capacities[r] as number;
    if (base[r]! > c * (1 + CAPACITY_TOLERANCE) + CAPACITY_TOLERANCE) {
      throw new Error(`water-fill: floors need ${base[r]} on resource ${r} of capacity ${c}`);
    }
    for (let k = start[r]!; k < start[r + 1]!; k++) if (state[members[k]!] === 1) rising[r]!++;
  }

  const heap = new LevelHeap(m);
  let level = 0;
  const reschedule = (r: number): void => {
    const c = capacities[r] as number;
    if (full[r] || rising[r] === 0 || c === Infinity) heap.remove(r);
    else heap.set(r, Math.max(level, (c - base[r]!) / rising[r]!));
  };
  const freezeRising = (i: number, at: number): void => {
    state[i] = 2;
    alloc[i] = at;
    for (const r of (flows[i] as Flow).resources) {
      base[r]! += at;
      rising[r]!--;
      reschedule(r);
    }
  };
  const saturate = (r: number): void => {
    full[r] = 1;
    heap.remove(r);
    for (let k = start[r]!; k < start[r + 1]!; k++) {
      const i = members[k]!;
      if (state[i] === 1) freezeRising(i, level);
      else if (state[i] === 0) state[i] = 2; // stays at its floor
    }
  };

  for (let r = 0; r < m; r++) {
    // Resources the floors already fill leave their flows where they are.
    if (base[r]! >= (capacities[r] as number) && start[r + 1]! > start[r]!) saturate(r);
    else reschedule(r);
  }

  const byFloor = sortedBy(floors, waiting, (i) => state[i] === 0);
  const byCap = sortedBy(caps, capped, (i) => state[i] !== 2 && caps[i]! < Infinity);
  let fi = 0;
  let ci = 0;

  for (;;) {
    while (fi < byFloor.length && state[byFloor[fi]!] !== 0) fi++;
    while (ci < byCap.length && state[byCap[ci]!] === 2) ci++;
    const nextFloor = fi < byFloor.length ? floors[byFloor[fi]!]! : Infinity;
    const nextCap = ci < byCap.length ? caps[byCap[ci]!]! : Infinity;
    const nextFull = heap.minKey();
    const next = Math.min(nextFloor, nextCap, nextFull);
    if (next === Infinity) break;
    level = Math.max(level, next);
    // Floors first on ties, so a flow starting to rise at L shares the resource that fills at L.
    if (nextFloor === next) {
      const i = byFloor[fi++]!;
      state[i] = 1;
      for (const r of (flows[i] as Flow).resources) {
        base[r]! -= floors[i]!;
        rising[r]!++;
        reschedule(r);
      }
    } else if (nextFull === next) {
      saturate(heap.minIndex());
    } else {
      const i = byCap[ci++]!;
      if (state[i] === 1) freezeRising(i, caps[i]!);
    }
  }
  // Whatever still rises crosses no finite resource and has no cap.
  for (let i = 0; i < n; i++) if (state[i] === 1) alloc[i] = Infinity;

  trimRoundingExcess(capacities, alloc, start, members);
  return alloc;
}

/** Indices i (where `keep(i)`) in increasing order of key[i]. */
function sortedBy(key: Float64Array, count: number, keep: (i: number) => boolean): Int32Array {
  const out = new Int32Array(count);
  let k = 0;
  for (let i = 0; i < key.length && k < count; i++) if (keep(i)) out[k++] = i;
  return out.sort((a, b) => key[a]! - key[b]!);
}

/**
 * Float sums can overshoot a full resource by an ulp or two; callers (and the
 * benchmark's physical model) treat capacity as a hard line, so shave it off.
 * Scaling one resource's flows down never raises another resource's sum.
 */
function trimRoundingExcess(capacities: ArrayLike<number>, alloc: Float64Array, start: Int32Array, members: Int32Array): void {
  for (let r = 0; r < capacities.length; r++) {
    const c = capacities[r] as number;
    if (c === Infinity) continue;
    let sum = 0;
    for (let k = start[r]!; k < start[r + 1]!; k++) sum += alloc[members[k]!]!;
    if (sum <= c) continue;
    const scale = (c / sum) * (1 - 4 * Number.EPSILON);
    for (let k = start[r]!; k < start[r + 1]!; k++) alloc[members[k]!]! *= scale;
  }
}

/** A binary min-heap of resources keyed by the level at which each fills; keys change in place. */
class LevelHeap {
  private readonly items: Int32Array;
  private readonly pos: Int32Array;
  private readonly key: Float64Array;
  private size = 0;

  constructor(capacity: number) {
    this.items = new Int32Array(capacity);
    this.pos = new Int32Array(capacity).fill(-1);
    this.key = new Float64Array(capacity);
  }

  minKey(): number {
    return this.size > 0 ? this.key[this.items[0]!]! : Infinity;
  }

  minIndex(): number {
    return this.items[0]!;
  }

  set(r: number, k: number): void {
    const p = this.pos[r]!;
    this.key[r] = k;
    if (p < 0) {
      this.items[this.size] = r;
      this.pos[r] = this.size++;
      this.up(this.size - 1);
    } else {
      this.up(p);
      this.down(this.pos[r]!);
    }
  }

  remove(r: number): void {
    const p = this.pos[r]!;
    if (p < 0) return;
    this.pos[r] = -1;
    const last = this.items[--this.size]!;
    if (p === this.size) return;
    this.items[p] = last;
    this.pos[last] = p;
    this.up(p);
    this.down(this.pos[last]!);
  }

  private up(p: number): void {
    const items = this.items;
    const r = items[p]!;
    const k = this.key[r]!;
    while (p > 0) {
      const q = (p - 1) >> 1;
      const parent = items[q]!;
      if (this.key[parent]! <= k) break;
      items[p] = parent;
      this.pos[parent] = p;
      p = q;
    }
    items[p] = r;
    this.pos[r] = p;
  }

  private down(p: number): void {
    const items = this.items;
    const r = items[p]!;
    const k = this.key[r]!;
    for (;;) {
      const l = 2 * p + 1;
      if (l >= this.size) break;
      let c = l;
      if (l + 1 < this.size && this.key[items[l + 1]!]! < this.key[items[l]!]!) c = l + 1;
      const child = items[c]!;
      if (this.key[child]! >= k) break;
      items[p] = child;
      this.pos[child] = p;
      p = c;
    }
    items[p] = r;
    this.pos[r] = p;
  }
}
