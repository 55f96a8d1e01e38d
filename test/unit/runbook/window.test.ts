import { MaintenanceWindowSpec } from '../../../src/api/maintenanceWindow.js';
import { isOpen, occurrenceAfter, occurrenceAt, parseDuration, resolveWindow, type ResolvedWindow } from '../../../src/runbook/window.js';

function resolved(spec: unknown): ResolvedWindow {
  const r = resolveWindow(spec as never);
  if (!r.ok) throw new Error(r.reason);
  return r.window;
}

describe('durations', () => {
  test('are read the way Kubernetes users write them', () => {
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('45s')).toBe(45_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(() => parseDuration('2 hours')).toThrow(/not a duration/);
    expect(() => parseDuration('')).toThrow(/not a duration/);
  });
});

describe('a single window', () => {
  test('RFC 3339 instants are taken as they are, whatever the zone', () => {
    const w = resolved({ start: '2025-06-01T02:00:00Z', end: '2025-06-01T06:00:00+02:00', timeZone: 'America/New_York' });
    expect(w).toEqual({ kind: 'fixed', occurrence: { start: Date.parse('2025-06-01T02:00:00Z'), end: Date.parse('2025-06-01T04:00:00Z') } });
  });

  test('local times are read in the given zone, summer time included', () => {
    const summer = resolved({ start: '2025-06-01T02:00', end: '2025-06-01T04:00', timeZone: 'Europe/Berlin' });
    expect(summer.kind === 'fixed' && summer.occurrence.start).toBe(Date.parse('2025-06-01T00:00:00Z'));
    const winter = resolved({ start: '2025-01-10T02:00', end: '2025-01-10T04:00', timeZone: 'Europe/Berlin' });
    expect(winter.kind === 'fixed' && winter.occurrence.start).toBe(Date.parse('2025-01-10T01:00:00Z'));
  });

  test('is open from its start until its end, and over afterwards', () => {
    const w = resolved({ start: '2025-06-01T02:00:00Z', end: '2025-06-01T04:00:00Z' });
    const o = occurrenceAt(w, Date.parse('2025-06-01T03:00:00Z'));
    expect(isOpen(o, Date.parse('2025-06-01T03:00:00Z'))).toBe(true);
    expect(isOpen(occurrenceAt(w, Date.parse('2025-06-01T01:00:00Z')), Date.parse('2025-06-01T01:00:00Z'))).toBe(false);
    expect(occurrenceAt(w, Date.parse('2025-06-01T04:00:00Z'))).toBeUndefined();
    expect(occurrenceAfter(w, o!)).toBeUndefined();
  });

  test('mistakes are reported in words', () => {
    expect(resolveWindow({ start: 'tonight', end: '2025-06-01T04:00:00Z' })).toMatchObject({ ok: false, reason: expect.stringMatching(/window.start "tonight"/) });
    expect(resolveWindow({ start: '2025-06-01T04:00:00Z', end: '2025-06-01T02:00:00Z' })).toMatchObject({ ok: false, reason: expect.stringMatching(/must be after/) });
    expect(resolveWindow({ start: '2025-06-01T02:00', end: '2025-06-01T04:00', timeZone: 'Mars/Olympus' })).toMatchObject({ ok: false, reason: expect.stringMatching(/not an IANA time zone/) });
    expect(resolveWindow({ schedule: 'every night', duration: '2h' })).toMatchObject({ ok: false, reason: expect.stringMatching(/not a cron expression/) });
  });
});

describe('a recurring window', () => {
  const nightly = resolved({ schedule: '0 2 * * *', duration: '2h', timeZone: 'Europe/Berlin' });

  test('inside an occurrence, that occurrence is in force', () => {
    const now = Date.parse('2025-06-01T01:00:00Z'); // 03:00 in Berlin
    expect(occurrenceAt(nightly, now)).toEqual({ start: Date.parse('2025-06-01T00:00:00Z'), end: Date.parse('2025-06-01T02:00:00Z') });
  });

  test('outside, the next one; after one closes, the one after it', () => {
    const now = Date.parse('2025-06-01T12:00:00Z');
    const next = occurrenceAt(nightly, now)!;
    expect(next).toEqual({ start: Date.parse('2025-06-02T00:00:00Z'), end: Date.parse('2025-06-02T02:00:00Z') });
    expect(occurrenceAfter(nightly, next)).toEqual({ start: Date.parse('2025-06-03T00:00:00Z'), end: Date.parse('2025-06-03T02:00:00Z') });
  });
});

describe('the MaintenanceWindow spec schema', () => {
  const window = { start: '2025-06-01T02:00:00Z', end: '2025-06-01T04:00:00Z' };

  test('fills in the defaults', () => {
    expect(MaintenanceWindowSpec.parse({ nodes: ['a'], window })).toEqual({ nodes: ['a'], window, maxNodesInMaintenance: 1, done: { uncordoned: true }, paused: false });
  });

  test('wants nodes or a selector, not both and not neither', () => {
    expect(MaintenanceWindowSpec.safeParse({ window }).success).toBe(false);
    expect(MaintenanceWindowSpec.safeParse({ nodes: ['a'], nodeSelector: { matchLabels: { rack: '1' } }, window }).success).toBe(false);
    expect(MaintenanceWindowSpec.safeParse({ nodeSelector: { matchLabels: { rack: '1' } }, window }).success).toBe(true);
  });

  test('rejects a duration it cannot read', () => {
    const r = MaintenanceWindowSpec.safeParse({ nodes: ['a'], window: { schedule: '0 2 * * *', duration: 'two hours' } });
    expect(r.success).toBe(false);
  });
});
