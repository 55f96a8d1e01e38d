import { Gauge, Registry } from 'prom-client';
import { perScrape } from './perScrape.js';

/** The statistics of one outgoing migration, as the source handler last read them. */
export interface HandlerJobView {
  /** `namespace/name` of the VMI. */
  vmi: string;
  dataTotal: number;
  dataProcessed: number;
  dataRemaining: number;
  /** Bytes/s the guest dirties. */
  dirtyRate: number;
  /** Bytes/s being transferred. */
  memoryBandwidth: number;
}

/** One node's handler at scrape time. */
export interface HandlerNodeView {
  /** Source and target jobs under way (the count heartbeats carry). */
  activeJobs: number;
  /** Running source jobs with statistics. */
  jobs: HandlerJobView[];
}

type JobField = Exclude<keyof HandlerJobView, 'vmi'>;

const JOB_GAUGES: Array<[string, string, JobField]> = [
  ['kubevirt_vmi_migration_data_total_bytes', 'The total Guest OS data to be migrated to the new VM.', 'dataTotal'],
  ['kubevirt_vmi_migration_data_processed_bytes', 'The total Guest OS data processed and migrated to the new VM.', 'dataProcessed'],
  ['kubevirt_vmi_migration_data_remaining_bytes', 'The remaining guest OS data to be migrated to the new VM.', 'dataRemaining'],
  ['kubevirt_vmi_migration_dirty_memory_rate_bytes', 'The rate of memory being dirty in the Guest OS (bytes/s).', 'dirtyRate'],
  ['kubevirt_vmi_migration_memory_transfer_rate_bytes', 'The rate at which the memory is being transferred (bytes/s).', 'memoryBandwidth'],
];

function splitVmi(ref: string): { namespace: string; name: string } {
  const i = ref.indexOf('/');
  return i < 0 ? { namespace: 'default', name: ref } : { namespace: ref.slice(0, i), name: ref.slice(i + 1) };
}

/**
 * The handler's Prometheus metrics, read at scrape time from the handlers
 * attached to it. One instance can serve several nodes (`ferry dev` runs one
 * handler per node in one process), so every series carries the node.
 */
export class HandlerMetrics {
  readonly registry: Registry;
  private readonly nodes = new Map<string, () => HandlerNodeView>();
  private readonly views: () => Array<[string, HandlerNodeView]>;

  constructor(opts: { registry?: Registry } = {}) {
    this.registry = opts.registry ?? new Registry();
    const registers = [this.registry];
    this.views = perScrape(() => [...this.nodes].map(([node, view]) => [node, view()] as [string, HandlerNodeView]));
    const views = () => this.views();

    for (const [name, help, field] of JOB_GAUGES) {
      new Gauge({
        name,
        help,
        labelNames: ['node', 'namespace', 'name'],
        registers,
        collect() {
          this.reset();
          for (const [node, view] of views()) {
            for (const job of view.jobs) this.set({ node, ...splitVmi(job.vmi) }, job[field]);
          }
        },
      });
    }
    new Gauge({
      name: 'ferry_handler_active_jobs',
      help: 'Migrations under way on a node (source and target roles).',
      labelNames: ['node'],
      registers,
      collect() {
        this.reset();
        for (const [node, view] of views()) this.set({ node }, view.activeJobs);
      },
    });
  }

  /** Reports `node`'s handler from now on; the returned function stops that. */
  attach(node: string, view: () => HandlerNodeView): () => void {
    if (this.nodes.has(node)) throw new Error(`handler metrics already report node ${node}`);
    this.nodes.set(node, view);
    return () => {
      if (this.nodes.get(node) === view) this.nodes.delete(node);
    };
  }
}
