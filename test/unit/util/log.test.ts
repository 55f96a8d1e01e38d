import { createLogger } from '../../../src/util/log.js';

test('a log line names each key once: the logger under `logger`, the innermost value of a repeated field wins', () => {
  const lines: string[] = [];
  const log = createLogger({ name: 'ferry-controller', destination: { write: (s: string) => { lines.push(s); } } });
  log.child({ component: 'controller', phase: 'Scheduling' }).child({ name: 'vm-1-migration', phase: 'Running' }).info({ phase: 'Succeeded', component: 'writer' }, 'phase written');
  expect(lines).toHaveLength(1);
  const raw = lines[0]!;
  for (const key of ['name', 'phase', 'component', 'logger', 'msg']) expect(raw.split(`"${key}":`)).toHaveLength(2);
  expect(JSON.parse(raw)).toMatchObject({ logger: 'ferry-controller', name: 'vm-1-migration', phase: 'Succeeded', component: 'writer', msg: 'phase written' });
  expect(raw.endsWith('\n')).toBe(true);
});
