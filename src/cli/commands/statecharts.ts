import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { charts } from '../../../statecharts/index.js';
import { renderChartJson, renderChartPage } from '../../docs/statechartMermaid.js';

/** `ferry statecharts export`: every registered chart as a Mermaid page or JSON, to files or stdout. */
export async function runStatechartsExport(o: { format: 'mermaid' | 'json'; out?: string }): Promise<void> {
  const render = o.format === 'json' ? renderChartJson : renderChartPage;
  const ext = o.format === 'json' ? 'json' : 'md';
  if (!o.out) {
    if (o.format === 'json') {
      process.stdout.write(`${JSON.stringify(charts.map((c) => JSON.parse(renderChartJson(c)) as unknown), null, 2)}\n`);
    } else {
      process.stdout.write(charts.map((c) => render(c)).join('\n'));
    }
    return;
  }
  await mkdir(o.out, { recursive: true });
  for (const c of charts) {
    const file = path.join(o.out, `${c.name}.${ext}`);
    await writeFile(file, render(c));
    process.stdout.write(`wrote ${file}\n`);
  }
}
