/**
 * A model of QEMU pre-copy live migration: pure data in, data out, no timers.
 *
 * The sim driver advances it in small real-time ticks, the benchmarks jump it
 * from event to event in virtual time, and the planner asks it for predictions,
 * so `advance` is exact for any dt: it integrates whole rounds in closed form
 * where their sizes follow a known law, and costs O(rounds) at worst, never O(dt).
 *
 * The model, in the words of QEMU's RAM migration:
 * - Round 0 sends every non-zero page: memoryBytes × (1 − zeroFraction).
 *   Zero pages are detected and cost nothing.
 * - While a round runs, the guest dirties memory at its effective dirty rate
 *   (dirtyRate × (1 − throttle)), but the bytes dirtied during one round never
 *   exceed the working set: the hot pages are re-dirtied, not new ones.
 * - The next round sends what was dirtied during the previous one.
 * - The convergence check runs at round boundaries only (when QEMU syncs its
 *   dirty bitmap): if the bytes now to send ÷ bandwidth ≤ maxDowntime, the
 *   guest pauses and the rest is sent in stop-and-copy. Stop-and-copy takes real
 *   time (remaining ÷ bandwidth at the bandwidth in force while it runs), and
 *   that time is the downtime; the migration completes when it is sent.
 *   Control changes therefore take effect at the next boundary, never mid-round.
 * - Auto-converge: after a round in which the guest dirtied at least half as
 *   many bytes as the round sent, the vCPU throttle steps to 20 %, then +10 %
 *   per further such round, capped at 99 % (QEMU's cpu-throttle-initial,
 *   -increment and max-cpu-throttle defaults). It takes effect from the next round.
 * - Post-copy: the guest pauses while its device state
 *   (POSTCOPY_SWITCHOVER_BYTES) is sent, then runs on the target; the source
 *   stops dirtying and the target pulls the remaining pages at the bandwidth.
 *   That switchover pause is the downtime. A post-copy migration cannot be
 *   aborted (libvirt refuses too: the guest already runs on the target).
 *
 * Units: bytes, bytes/s, milliseconds.
 */
import type { JobPhase, JobStats, MigrationMode } from './driver.js';

export interface GuestModel {
  memoryBytes: number;
  /** Bytes/s the guest dirties at steady state, unthrottled. */
  dirtyRate: number;
  /** Hot bytes that keep being re-dirtied: the most one round can dirty (capped at memoryBytes). */
  workingSet: number;
  /** 0..1: share of memory in zero pages, which cost nothing to send. */
  zeroFraction: number;
}

export interface PrecopyControls {
  /** Bytes/s, > 0: callers resolve "unlimited" to the NIC speed. */
  bandwidth: number;
  /** > 0. */
  maxDowntimeMs: number;
  autoConverge: boolean;
  /** The post-copy capability; the switch itself is startPostCopy(). */
  postCopy: boolean;
}

/**
 * precopy: live rounds · stopAndCopy: guest paused, last bytes going out ·
 * postcopy: guest on the target, pages being pulled · completed · aborted.
 */
export type PrecopyStage = 'precopy' | 'stopAndCopy' | 'postcopy' | 'completed' | 'aborted';

export interface PrecopyState {
  readonly guest: Readonly<GuestModel>;
  readonly controls: Readonly<PrecopyControls>;
  readonly stage: PrecopyStage;
  readonly mode: MigrationMode;
  readonly elapsedMs: number;
  /** 0-based index of the current live round; stays at the last one during stop-and-copy and post-copy. */
  readonly round: number;
  /** Bytes the current live round had to send when it began. */
  readonly roundBytes: number;
  /** Bytes of the current round (or of the stop-and-copy / post-copy transfer) not yet sent. */
  readonly roundLeft: number;
  /** Bytes dirtied since the current round began (≤ working set); 0 outside live rounds. */
  readonly dirtied: number;
  /** Of roundLeft, the bytes that still go out while the guest is paused. */
  readonly pausedLeft: number;
  /** Auto-converge vCPU throttle, percent. */
  readonly throttle: number;
  readonly dataProcessed: number;
  /** Time the guest has spent paused so far; the final downtime once completed. */
  readonly downtimeMs: number;
  readonly abortReason?: string;
}

export interface MigrationPrediction {
  /** Infinity when it never converges. */
  durationMs: number;
  /** Infinity when it never converges. */
  downtimeMs: number;
  converges: boolean;
  /** Live rounds sent before stop-and-copy (libvirt's final "iteration"); Infinity when it never converges. */
  rounds: number;
}

/** Device state sent while the guest is paused at the switch to post-copy: its downtime is this ÷ bandwidth. */
export const POSTCOPY_SWITCHOVER_BYTES = 1024 * 1024;
export const AUTO_CONVERGE_INITIAL_PERCENT = 20;
export const AUTO_CONVERGE_INCREMENT_PERCENT = 10;
export const AUTO_CONVERGE_MAX_PERCENT = 99;
/** A round counts as "not converging" when it dirtied at least this share of what it sent. */
const AUTO_CONVERGE_TRIGGER = 0.5;

type Work = { -readonly [K in keyof PrecopyState]: PrecopyState[K] };
type RunEnd = 'budget' | 'done' | 'stuck';

export function startPrecopy(guest: GuestModel, controls: PrecopyControls): PrecopyState {
  checkGuest(guest);
  checkPositive('bandwidth', controls.bandwidth);
  checkPositive('maxDowntimeMs', controls.maxDowntimeMs);
  const firstRound = guest.memoryBytes * (1 - guest.zeroFraction);
  const w: Work = {
    guest: { ...guest },
    controls: { ...controls },
    stage: 'precopy',
    mode: 'PreCopy',
    elapsedMs: 0,
    round: 0,
    roundBytes: firstRound,
    roundLeft: firstRound,
    dirtied: 0,
    pausedLeft: 0,
    throttle: 0,
    dataProcessed: 0,
    downtimeMs: 0,
  };
  // An all-zero guest has an empty round 0: settle it now rather than at the first advance.
  run(w, 0);
  return w;
}

/** The state dtMs later, at the current controls. Exact for any dt: advance(s, a + b) = advance(advance(s, a), b). */
export function advance(state: PrecopyState, dtMs: number): PrecopyState {
  if (!(dtMs >= 0) || !Number.isFinite(dtMs)) {
    throw new RangeError(`precopy advance: dtMs must be a finite number ≥ 0, got ${dtMs}`);
  }
  if (isFinished(state)) return state;
  const w: Work = { ...state };
  run(w, dtMs);
  return w;
}

/** Applies from now on, including the rest of the current round. Allowed in any stage (no effect once finished). */
export function setBandwidth(state: PrecopyState, bytesPerSecond: number): PrecopyState {
  checkPositive('bandwidth', bytesPerSecond);
  return { ...state, controls: { ...state.controls, bandwidth: bytesPerSecond } };
}

/** Takes effect at the next convergence check (the end of the current round). */
export function setMaxDowntime(state: PrecopyState, ms: number): PrecopyState {
  checkPositive('maxDowntimeMs', ms);
  return { ...state, controls: { ...state.controls, maxDowntimeMs: ms } };
}

/**
 * Switches a live migration to post-copy at once. Idempotent in post-copy; a no-op
 * during stop-and-copy (the guest is already paused for its last bytes, as QEMU
 * ignores a late switch request). Throws when the capability is off or the job ended.
 */
export function startPostCopy(state: PrecopyState): PrecopyState {
  if (isFinished(state)) throw new Error(`cannot switch to post-copy: the migration is already ${state.stage}`);
  if (!state.controls.postCopy) {
    throw new Error('cannot switch to post-copy: the postCopy capability was not enabled for this migration');
  }
  if (state.stage !== 'precopy') return state;
  return {
    ...state,
    stage: 'postcopy',
    mode: 'PostCopy',
    roundLeft: state.roundLeft + state.dirtied + POSTCOPY_SWITCHOVER_BYTES,
    pausedLeft: POSTCOPY_SWITCHOVER_BYTES,
    dirtied: 0,
  };
}

/** The guest keeps running on the source. Idempotent; throws once completed or in post-copy. */
export function abortPrecopy(state: PrecopyState, reason: string): PrecopyState {
  if (state.stage === 'aborted') return state;
  if (state.stage === 'completed') throw new Error('cannot abort: the migration already completed');
  if (state.stage === 'postcopy') {
    throw new Error('cannot abort a migration in post-copy mode: the guest already runs on the target');
  }
  return { ...state, stage: 'aborted', abortReason: reason };
}

/**
 * libvirt-style job statistics.
 * - dataRemaining: what would still have to be sent if the guest stopped now:
 *   the unsent part of the current round plus what was dirtied since it began.
 *   (libvirt's own counter only adds the latter at the next bitmap sync, so it
 *   saw-tooths; this one is continuous.)
 * - dataTotal = dataProcessed + dataRemaining: the bytes that will have been
 *   sent by the end if nothing more is dirtied. It grows while the guest dirties.
 * - iteration: 1-based live round; it does not count stop-and-copy.
 * - dirtyRate: the effective (throttled) rate during live rounds, else 0.
 * - expectedDowntimeMs: in live rounds, dataRemaining ÷ bandwidth; once paused,
 *   the downtime so far plus the rest of the paused transfer.
 */
export function jobStats(state: PrecopyState): JobStats {
  const perMs = state.controls.bandwidth / 1000;
  const phase = phaseOf(state.stage);
  const remaining = state.roundLeft + state.dirtied;
  const stats: JobStats = {
    phase,
    mode: state.mode,
    elapsedMs: state.elapsedMs,
    dataTotal: state.dataProcessed + remaining,
    dataProcessed: state.dataProcessed,
    dataRemaining: remaining,
    memoryBandwidth: phase === 'running' ? state.controls.bandwidth : 0,
    dirtyRate: state.stage === 'precopy' ? effectiveDirtyRate(state) : 0,
    iteration: state.round + 1,
    autoConvergeThrottle: state.throttle,
    bandwidthLimit: state.controls.bandwidth,
  };
  if (state.stage === 'precopy') stats.expectedDowntimeMs = remaining / perMs;
  if (state.stage === 'stopAndCopy' || state.stage === 'postcopy') {
    stats.expectedDowntimeMs = state.downtimeMs + state.pausedLeft / perMs;
  }
  if (state.stage === 'completed') {
    stats.expectedDowntimeMs = state.downtimeMs;
    stats.downtimeMs = state.downtimeMs;
  }
  return stats;
}

/** Time from now to completion at the current controls; 0 once completed, Infinity if it never completes. */
export function timeToFinishMs(state: PrecopyState): number {
  if (state.stage === 'completed') return 0;
  if (state.stage === 'aborted') return Infinity;
  const w: Work = { ...state };
  return run(w, Infinity) === 'stuck' ? Infinity : w.elapsedMs - state.elapsedMs;
}

/** The whole migration at constant controls, without a switch to post-copy. */
export function predictMigration(guest: GuestModel, controls: PrecopyControls): MigrationPrediction {
  const w: Work = { ...startPrecopy(guest, controls) };
  if (run(w, Infinity) === 'stuck') {
    return { durationMs: Infinity, downtimeMs: Infinity, converges: false, rounds: Infinity };
  }
  return { durationMs: w.elapsedMs, downtimeMs: w.downtimeMs, converges: true, rounds: w.round + 1 };
}

/**
 * The smallest constant bandwidth (bytes/s) at which this guest's pre-copy
 * converges without auto-converge; 0 when any bandwidth will do.
 *
 * After round 0 the round sizes follow S₁ = min(W, r·M/b), Sₖ₊₁ = min(W, r·Sₖ/b).
 * With b > r they shrink geometrically, so it converges for any downtime > 0;
 * with b ≤ r they never shrink, so it converges only if S₁ already fits:
 * min(W, r·M/b) ≤ b·d, i.e. b ≥ min(W/d, √(r·M/d)). The answer is the smaller
 * of that and r; r itself is only an infimum (at b = r nothing shrinks), so the
 * result is nudged up by a relative 1e-9, which also absorbs rounding.
 */
export function convergenceBandwidth(guest: GuestModel, maxDowntimeMs: number): number {
  checkGuest(guest);
  checkPositive('maxDowntimeMs', maxDowntimeMs);
  const firstRound = guest.memoryBytes * (1 - guest.zeroFraction);
  const workingSet = workingSetOf(guest);
  const r = guest.dirtyRate;
  if (r === 0 || workingSet === 0 || firstRound === 0) return 0;
  const d = maxDowntimeMs / 1000;
  const fitsAtOnce = Math.min(workingSet / d, Math.sqrt((r * firstRound) / d));
  return Math.min(fitsAtOnce, r) * (1 + 1e-9);
}

export function isFinished(state: PrecopyState): boolean {
  return state.stage === 'completed' || state.stage === 'aborted';
}

function phaseOf(stage: PrecopyStage): JobPhase {
  if (stage === 'completed' || stage === 'aborted') return stage;
  return 'running';
}

function effectiveDirtyRate(state: PrecopyState): number {
  return state.guest.dirtyRate * (1 - state.throttle / 100);
}

function workingSetOf(guest: Readonly<GuestModel>): number {
  return Math.min(guest.workingSet, guest.memoryBytes);
}

/**
 * Moves w forward by up to budgetMs (Infinity: until it finishes). Returns
 * 'done' when it finished, 'budget' when time ran out, and 'stuck' (only with an
 * infinite budget) when the live rounds provably never converge.
 */
function run(w: Work, budgetMs: number): RunEnd {
  let budget = budgetMs;
  for (;;) {
    if (w.stage === 'completed' || w.stage === 'aborted') return 'done';
    const perMs = w.controls.bandwidth / 1000;
    const slack = timeSlack(w, budget);
    if (w.stage !== 'precopy') {
      const need = w.roundLeft / perMs;
      if (need > budget + slack) {
        sendWhilePaused(w, perMs, budget);
        return 'budget';
      }
      w.dataProcessed += w.roundLeft;
      w.downtimeMs += w.pausedLeft / perMs;
      w.elapsedMs += need;
      w.roundLeft = 0;
      w.pausedLeft = 0;
      w.stage = 'completed';
      return 'done';
    }
    if (w.dirtied === 0 && w.roundLeft === w.roundBytes) {
      const left = skipPredictableRounds(w, budget);
      if (left === 'stuck') return 'stuck';
      budget = left;
    }
    const dirtyPerMs = effectiveDirtyRate(w) / 1000;
    const workingSet = workingSetOf(w.guest);
    const need = w.roundLeft / perMs;
    if (need > budget + slack) {
      const sent = Math.min(w.roundLeft, perMs * budget);
      w.roundLeft -= sent;
      w.dataProcessed += sent;
      w.dirtied = Math.min(workingSet, w.dirtied + dirtyPerMs * budget);
      w.elapsedMs += budget;
      return 'budget';
    }
    w.dataProcessed += w.roundLeft;
    w.roundLeft = 0;
    w.dirtied = Math.min(workingSet, w.dirtied + dirtyPerMs * need);
    w.elapsedMs += need;
    budget = Math.max(0, budget - need);
    endRound(w);
  }
}

/**
 * An event due within this much of the end of the budget happens now. Without it,
 * advance(s, timeToFinishMs(s)) could stop a rounding error short of completion,
 * because a sum of round durations minus its first terms is not its last terms.
 */
function timeSlack(w: Work, budget: number): number {
  return 1e-9 + 1e-12 * (w.elapsedMs + budget);
}

function sendWhilePaused(w: Work, perMs: number, budget: number): void {
  const sent = Math.min(w.roundLeft, perMs * budget);
  w.downtimeMs += Math.min(budget, w.pausedLeft / perMs);
  w.pausedLeft = Math.max(0, w.pausedLeft - sent);
  w.roundLeft -= sent;
  w.dataProcessed += sent;
  w.elapsedMs += budget;
}

/** The bitmap sync at the end of a live round: convergence check, auto-converge, next round. */
function endRound(w: Work): void {
  const threshold = (w.controls.bandwidth * w.controls.maxDowntimeMs) / 1000;
  if (w.dirtied <= threshold) {
    w.stage = 'stopAndCopy';
    w.roundLeft = w.dirtied;
    w.pausedLeft = w.dirtied;
    w.dirtied = 0;
    return;
  }
  if (w.controls.autoConverge && w.dirtied >= w.roundBytes * AUTO_CONVERGE_TRIGGER) {
    w.throttle = w.throttle === 0
      ? AUTO_CONVERGE_INITIAL_PERCENT
      : Math.min(AUTO_CONVERGE_MAX_PERCENT, w.throttle + AUTO_CONVERGE_INCREMENT_PERCENT);
  }
  w.round += 1;
  w.roundBytes = w.dirtied;
  w.roundLeft = w.dirtied;
  w.dirtied = 0;
}

/**
 * At the start of a live round, jumps over the rounds whose sizes follow a
 * closed form, leaving the last one before convergence (and any partial round)
 * to the step-by-step loop. Returns the budget left, or 'stuck' when the budget
 * is infinite and the rounds never converge.
 *
 * The sizes are predictable once the throttle can no longer change (auto-converge
 * off, at its cap, or the guest dirtying under half of each round) and the round
 * fits in the working set (every round after round 0 does). With q = effective
 * dirty rate ÷ bandwidth:
 * - q ≥ 1: sizes never shrink; if the next one does not fit the downtime, none
 *   ever will. Once they stop growing (pinned at the working set) the rounds
 *   repeat identically and whole periods are skipped.
 * - q < 1: sizes are S·qʲ, times S/b·(1 − qʲ)/(1 − q), both inverted with logs.
 */
function skipPredictableRounds(w: Work, budget: number): number | 'stuck' {
  const size = w.roundBytes;
  const bandwidth = w.controls.bandwidth;
  const dirtyRate = effectiveDirtyRate(w);
  const q = dirtyRate / bandwidth;
  const workingSet = workingSetOf(w.guest);
  const threshold = (bandwidth * w.controls.maxDowntimeMs) / 1000;
  const throttleFixed = !w.controls.autoConverge || w.throttle >= AUTO_CONVERGE_MAX_PERCENT || q < AUTO_CONVERGE_TRIGGER;
  if (!throttleFixed || size > workingSet || size <= 0) return budget;
  const roundMs = size / (bandwidth / 1000);

  if (q >= 1) {
    const next = Math.min(workingSet, (dirtyRate / 1000) * roundMs);
    if (next <= threshold) return budget;
    if (budget === Infinity) return 'stuck';
    if (next !== size) return budget;
    const periods = Math.floor(budget / roundMs);
    if (periods < 1) return budget;
    w.round += periods;
    w.dataProcessed += periods * size;
    w.elapsedMs += periods * roundMs;
    return Math.max(0, budget - periods * roundMs);
  }

  if (q <= 0) return budget;
  const lnQ = Math.log(q);
  const skip = roundsWithin(roundMs, lnQ, budget, roundsUntilFits(size, lnQ, threshold) - 1);
  if (skip < 1) return budget;
  const sum = geometricSum(lnQ, skip);
  w.round += skip;
  w.dataProcessed += size * sum;
  w.elapsedMs += roundMs * sum;
  w.roundBytes = size * Math.exp(skip * lnQ);
  w.roundLeft = w.roundBytes;
  return Math.max(0, budget - roundMs * sum);
}

/** 1 + q + … + q^(n−1), written with expm1 to stay accurate for q near 1. */
function geometricSum(lnQ: number, n: number): number {
  return Math.expm1(n * lnQ) / Math.expm1(lnQ);
}

/** Smallest n ≥ 1 with size·qⁿ ≤ threshold (0 < q < 1, threshold > 0). */
function roundsUntilFits(size: number, lnQ: number, threshold: number): number {
  const fits = (n: number): boolean => size * Math.exp(n * lnQ) <= threshold;
  let hi = Math.max(1, Math.ceil(Math.log(threshold / size) / lnQ));
  while (!fits(hi)) hi *= 2;
  return firstTrue(fits, 1, hi);
}

/** Largest n ≤ cap whose first n rounds fit in budget. */
function roundsWithin(roundMs: number, lnQ: number, budget: number, cap: number): number {
  if (budget === Infinity || cap <= 0) return Math.max(0, cap);
  const fits = (n: number): boolean => roundMs * geometricSum(lnQ, n) <= budget;
  return firstTrue((n) => !fits(n + 1), 0, cap);
}

/**
 * Smallest n in [lo, hi] with pred(n), for a predicate that is false then true
 * and true at hi. A bisection rather than a walk from a log estimate: near
 * q = 1 or the series' limit the estimate can be off by many rounds.
 */
function firstTrue(pred: (n: number) => boolean, lo: number, hi: number): number {
  while (lo < hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (pred(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function checkGuest(guest: GuestModel): void {
  checkPositive('memoryBytes', guest.memoryBytes);
  checkNonNegative('dirtyRate', guest.dirtyRate);
  checkNonNegative('workingSet', guest.workingSet);
  if (!(guest.zeroFraction >= 0 && guest.zeroFraction <= 1)) {
    throw new RangeError(`precopy guest model: zeroFraction must be within 0..1, got ${guest.zeroFraction}`);
  }
}

function checkPositive(name: string, value: number): void {
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`precopy model: ${name} must be a finite number > 0, got ${value}`);
  }
}

function checkNonNegative(name: string, value: number): void {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(`precopy model: ${name} must be a finite number ≥ 0, got ${value}`);
  }
}
