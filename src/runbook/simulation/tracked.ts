import { advance, jobStats, setBandwidth, startPrecopy, timeToFinishMs, type GuestModel, type PrecopyControls, type PrecopyState } from '../../hypervisor/precopy.js';

/**
 * One migration on the pre-copy model, moved through virtual time, watching
 * what KubeVirt's launcher watches: the lowest `dataRemaining` seen so far and
 * when it last went down (its progress timeout fires when that is too long ago).
 *
 * Within a round, remaining data either falls throughout, or rises while the
 * guest dirties faster than we send and then falls: its lowest point over any
 * stretch is at the stretch's ends or at a round boundary. So stepping from
 * boundary to boundary sees every new low, exactly, whatever the time step.
 */
export class TrackedMigration {
  state: PrecopyState;
  /** Virtual time (ms) the state is at. */
  at: number;
  lowestRemaining: number;
  lastProgressAt: number;

  constructor(guest: GuestModel, controls: PrecopyControls, now: number) {
    this.state = startPrecopy(guest, controls);
    this.at = now;
    this.lowestRemaining = this.remaining();
    this.lastProgressAt = now;
  }

  remaining(): number {
    return jobStats(this.state).dataRemaining;
  }

  advanceTo(t: number): void {
    let left = t - this.at;
    if (left <= 0) return;
    for (let steps = 0; left > 0; steps++) {
      if (steps > 1_000_000) throw new Error(`migration stuck stepping rounds at ${this.at} ms (${this.state.stage})`);
      const s = this.state;
      if (s.stage === 'completed' || s.stage === 'aborted') {
        this.at = t;
        return;
      }
      const toBoundary = s.stage === 'precopy' ? s.roundLeft / (s.controls.bandwidth / 1000) : Infinity;
      const step = toBoundary > 0 && toBoundary < left ? toBoundary : left;
      this.state = advance(s, step);
      left -= step;
      this.at = t - left;
      this.observe();
    }
    this.at = t;
  }

  setBandwidth(bytesPerSecond: number): void {
    this.state = setBandwidth(this.state, bytesPerSecond);
  }

  /** Virtual time at which it completes if nothing changes; Infinity if never. */
  finishesAt(): number {
    return this.at + timeToFinishMs(this.state);
  }

  private observe(): void {
    const r = this.remaining();
    if (r < this.lowestRemaining) {
      this.lowestRemaining = r;
      this.lastProgressAt = this.at;
    }
  }
}
