import { jest } from '@jest/globals';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runStatechartsExport } from '../../src/cli/commands/statecharts.js';
import { runApiDocs } from '../../src/cli/commands/docs.js';

const root = path.resolve(import.meta.dirname, '../..');
let dir: string;
let stdout: jest.SpiedFunction<typeof process.stdout.write>;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-docs-'));
  stdout = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
});
afterEach(() => {
  stdout.mockRestore();
  rmSync(dir, { recursive: true, force: true });
});

test('`ferry statecharts export --out DIR` writes the committed Mermaid pages', async () => {
  await runStatechartsExport({ format: 'mermaid', out: dir });
  expect(readdirSync(dir)).toEqual(['migration.md', 'runbook.md']);
  for (const page of ['migration.md', 'runbook.md']) {
    expect(readFileSync(path.join(dir, page), 'utf8')).toBe(readFileSync(path.join(root, 'docs/statecharts', page), 'utf8'));
    expect(stdout).toHaveBeenCalledWith(`wrote ${path.join(dir, page)}\n`);
  }
});

test('`ferry statecharts export --format json` gives the chart outline: states, transitions, timers', async () => {
  await runStatechartsExport({ format: 'json', out: dir });
  const doc = JSON.parse(readFileSync(path.join(dir, 'migration.json'), 'utf8')) as { name: string; chart: { id: string; initial: string; states: Array<{ key: string; transitions: Array<{ event: string }> }> } };
  expect(doc.name).toBe('migration');
  expect(doc.chart).toMatchObject({ id: 'migration', initial: 'Resume' });
  expect(doc.chart.states.map((s) => s.key)).toEqual(['Resume', 'Pending', 'Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running', 'Succeeded', 'Failed']);
  const scheduling = doc.chart.states.find((s) => s.key === 'Scheduling')!;
  expect(scheduling.transitions.map((t) => t.event)).toContain('after(pendingPodTimeout)');
});

test('`ferry docs api --out FILE` writes the committed API reference', async () => {
  const file = path.join(dir, 'sub', 'api.md');
  await runApiDocs({ out: file });
  expect(readFileSync(file, 'utf8')).toBe(readFileSync(path.join(root, 'docs/api-reference.md'), 'utf8'));
});
