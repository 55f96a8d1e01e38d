import { describe, expect, it } from '@jest/globals';
import { isUncertainFailure, judge, type SideView } from '../../../src/controller/arbiter.js';

const answered = (job?: string, domain?: string): SideView => ({
  answered: true,
  ...(job ? { job: { state: job } } : {}),
  ...(domain ? { domain: { state: domain } } : {}),
});
const silent: SideView = { answered: false, error: 'handler node-x did not answer list-jobs within 5000 ms' };

describe('the arbiter: where does the guest run?', () => {
  it('follows a source that still migrates', () => {
    expect(judge({ source: answered('running', 'running'), target: answered('prepared', 'incoming') }).kind).toBe('migrating');
    expect(judge({ source: answered('running', 'running'), target: silent }).kind).toBe('migrating');
  });

  it('believes a source that reports completion', () => {
    expect(judge({ source: answered('completed'), target: silent }).kind).toBe('completed');
  });

  it('takes a domain running on the target as the guest, whatever the source says (targetNodeDomainDetected)', () => {
    expect(judge({ source: silent, target: answered(undefined, 'running') }).kind).toBe('completed');
    expect(judge({ source: answered('failed'), target: answered('prepared', 'paused') }).kind).toBe('completed');
    expect(judge({ source: answered(undefined), target: answered('finished', 'running') }).kind).toBe('completed');
  });

  it('refuses to pick a side when both run the guest', () => {
    expect(judge({ source: answered(undefined, 'running'), target: answered(undefined, 'running') }).kind).toBe('unknown');
  });

  it('gives "failed" (safe to clean the target) when the guest runs on the source and no migration runs', () => {
    const v = judge({ source: answered('aborted', 'running'), target: answered('prepared', 'incoming') });
    expect(v).toMatchObject({ kind: 'failed', sourceJob: 'aborted' });
    // A target that did not answer cannot hold the guest while the source runs it outside any migration.
    expect(judge({ source: answered(undefined, 'running'), target: silent }).kind).toBe('failed');
  });

  it('treats a guest that left the source as living in the target\'s domain, even before the switch-over', () => {
    // A handler restarted after completion: no record, the departed guest forgotten.
    expect(judge({ source: answered(undefined, undefined), target: answered(undefined, 'incoming') }).kind).toBe('completed');
    expect(judge({ source: answered(undefined, 'shutoff'), target: answered('prepared', 'incoming') }).kind).toBe('completed');
  });

  it('does not decide on silence', () => {
    expect(judge({ source: silent, target: silent }).kind).toBe('unknown');
    expect(judge({ source: answered(undefined, undefined), target: silent }).kind).toBe('unknown');
    expect(judge({ source: silent, target: answered('prepared', 'incoming') }).kind).toBe('unknown');
    expect(judge({ source: answered(undefined, 'paused'), target: answered('prepared', 'incoming') }).kind).toBe('unknown');
  });

  it('decides from the target alone once the source node is confirmed lost', () => {
    expect(judge({ source: silent, target: answered('prepared', 'incoming'), sourceLost: true }).kind).toBe('failed');
    expect(judge({ source: silent, target: answered(undefined, 'running'), sourceLost: true }).kind).toBe('completed');
  });

  it('lets a silent source go when the target holds nothing of the guest', () => {
    expect(judge({ source: silent, target: answered(undefined, undefined) }).kind).toBe('failed');
    expect(judge({ source: silent, target: answered('cancelled', 'incoming') }).kind).toBe('failed');
  });
});

describe('uncertain source failures', () => {
  it('are the ones that say they cannot tell', () => {
    expect(isUncertainFailure('node-a: domain disappeared while no handler was watching its migration, and no outcome had been recorded; cannot tell whether it completed')).toBe(true);
    expect(isUncertainFailure('lost the connection to libvirtd on node-a while migrating x; the migration may still be running there (EPIPE)')).toBe(true);
    expect(isUncertainFailure('target refused connection')).toBe(false);
  });
});
