/**
 * Where does the guest run? The pure decision the controller makes when it
 * does not know how a migration ended: a command timed out, the source has no
 * record, a node went silent, or a restarted controller resumes mid-flight.
 *
 * The inputs are what each side's handler answered to `list-jobs` (or that it
 * did not answer). The rule follows KubeVirt's `targetNodeDomainDetected`: a
 * domain that runs on the target is the guest, whatever the source says. The
 * verdict `failed` (safe to remove the target) is only given on positive
 * knowledge that the guest does not run on the target.
 *
 * No I/O here, so every rule has a unit test (test/unit/controller/arbiter.test.ts).
 */

/** One handler's answer, narrowed to this migration and its domain. */
export type SideView =
  | {
      answered: true;
      /** This migration's job on that node, if the handler knows it (state as list-jobs reports it). */
      job?: { state: string } | undefined;
      /** The guest's domain on that node, if the hypervisor has one. */
      domain?: { state: string } | undefined;
    }
  | { answered: false; error: string };

export interface ArbiterInput {
  source: SideView;
  target: SideView;
  /** The source node is confirmed lost (Node NotReady and no heartbeat): it runs nothing any more. */
  sourceLost?: boolean;
}

export type Verdict =
  /** The source still streams: go back to waiting for its result. */
  | { kind: 'migrating'; why: string; sourceJob: string | undefined }
  /** The guest runs on (or only exists on) the target: finalize there. */
  | { kind: 'completed'; why: string; sourceJob: string | undefined }
  /** The guest runs on the source and not on the target: the target may be cleaned up. */
  | { kind: 'failed'; why: string; sourceJob: string | undefined }
  /** Not enough known to act; ask again. */
  | { kind: 'unknown'; why: string; sourceJob: string | undefined };

/** Domain states in which the hypervisor holds the guest (not a shell waiting for memory). */
const HOLDS_GUEST = new Set(['running', 'paused']);

export function judge(input: ArbiterInput): Verdict {
  const { source, target } = input;
  const sourceJob = source.answered ? source.job?.state : undefined;
  const v = (kind: Verdict['kind'], why: string): Verdict => ({ kind, why, sourceJob });

  if (sourceJob === 'running' || sourceJob === 'starting') return v('migrating', 'the source handler reports the migration as running');
  if (sourceJob === 'completed') return v('completed', 'the source handler reports the migration as completed');

  const targetHolds = target.answered && target.domain !== undefined && HOLDS_GUEST.has(target.domain.state);
  const targetFinished = target.answered && target.job?.state === 'finished';
  const sourceRuns = source.answered && source.domain?.state === 'running';

  if (targetHolds || targetFinished) {
    // Both sides running the guest is split brain: nobody may be removed by us.
    if (sourceRuns) return v('unknown', 'the guest\'s domain runs on both the source and the target');
    return v('completed', `the guest's domain is ${target.answered ? target.domain?.state ?? 'taken over' : '?'} on the target`);
  }

  if (source.answered) {
    if (sourceRuns) {
      // Running and not migrating: the guest is on the source, whatever the target has prepared.
      return v('failed', sourceJob ? `the source handler reports the migration as ${sourceJob} and the guest runs on the source` : 'the guest runs on the source and no migration of it runs there');
    }
    const sourceState = source.domain?.state;
    if (sourceState === undefined || sourceState === 'shutoff') {
      if (!target.answered) return v('unknown', `the guest is not running on the source and the target did not answer (${target.error})`);
      // The guest left the source; the target's domain (waiting for the final switch-over) is the only copy.
      if (target.domain) return v('completed', `the guest left the source and its domain is ${target.domain.state} on the target`);
      return v('unknown', 'the guest runs on neither node');
    }
    return v('unknown', `the guest's domain is ${sourceState} on the source`);
  }

  // The source did not answer.
  if (!target.answered) return v('unknown', `neither handler answered (source: ${source.error}; target: ${target.error})`);
  if (!target.domain || target.job?.state === 'cancelled') {
    return v('failed', `the source did not answer (${source.error}) and the target holds no domain for the guest`);
  }
  if (input.sourceLost) {
    return v('failed', `the source node is lost and the target's domain is only ${target.domain.state} (it never ran the guest)`);
  }
  return v('unknown', `the source did not answer (${source.error}) and the target's domain is ${target.domain.state}`);
}

/**
 * A source failure that says it cannot tell whether the migration completed
 * (handler recovery after a crash, a lost libvirtd connection). Those go to the
 * arbiter instead of Failed.
 */
export function isUncertainFailure(reason: string): boolean {
  return /cannot tell|may still be running/i.test(reason);
}
