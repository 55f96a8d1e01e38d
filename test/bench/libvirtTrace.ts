/**
 * Where a peer-to-peer migration's time goes inside the source libvirtd, read
 * from its debug log (launcher.sh writes it when FERRY_LIBVIRTD_LOG_FILTERS
 * asks for `qemu.qemu_migration` and `qemu.qemu_process` at level 1). The same
 * steps are found for raw `virsh migrate --p2p` and for Ferry, so the two can
 * be compared stage by stage; what is left of the caller's wall time is the
 * caller's own (virsh's start, or Ferry's control plane).
 */

/** The source daemon's marks, in the order libvirt's Perform3 protocol passes them. */
const MARKS = {
  perform: 'qemuMigrationSrcPerform:',
  prepare: ': Prepare3 ',
  perform3: ': Perform3 ',
  finish: ': Finish3 ',
  confirm: ': Confirm3 ',
  kill: 'qemuProcessKill:',
  end: 'qemuMigrationSrcRestoreDomainState:',
} as const;

type Mark = keyof typeof MARKS;

export interface LibvirtStages {
  /** When the perform call arrived (epoch ms, this machine's clock). */
  performAt: number;
  /** From the perform call's arrival to its last step (the source QEMU gone). */
  performMs: number;
  /** Begin, and opening the connection to the destination daemon (through the proxy for Ferry). */
  connectMs: number;
  /** Prepare on the destination: its QEMU started and listening. */
  prepareMs: number;
  /** The memory copy, from the migrate command to QEMU's completion (libvirt's job, less its setup). */
  transferMs: number;
  /** Finish on the destination (guest resumed there). */
  finishMs: number;
  /** Confirm on the source, up to killing its QEMU. */
  confirmMs: number;
  /** The source QEMU's exit: SIGTERM until the process is gone (its reaping counts). */
  stopSourceMs: number;
}

/** `2026-12-03 21:48:24.754+0000: …` → epoch ms. */
function stamp(line: string): number | undefined {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})([+-]\d{4}):/.exec(line);
  if (!m) return undefined;
  return Date.parse(`${m[1]}T${m[2]}${m[3]!.slice(0, 3)}:${m[3]!.slice(3)}`);
}

/**
 * The first complete outgoing migration in `log` whose perform call arrived in
 * [fromMs, toMs]. Undefined when the log holds none (trace not enabled, or the
 * migration took another path).
 */
export function libvirtStages(log: string, fromMs: number, toMs: number): LibvirtStages | undefined {
  const at: Partial<Record<Mark, number>> = {};
  for (const line of log.split('\n')) {
    const t = stamp(line);
    if (t === undefined || t < fromMs || t > toMs) continue;
    for (const [mark, needle] of Object.entries(MARKS) as [Mark, string][]) {
      if (line.includes(needle)) {
        if (mark === 'perform' && at.perform !== undefined) continue;
        if (mark !== 'perform' && at.perform === undefined) continue;
        at[mark] ??= t;
      }
    }
    if (at.end !== undefined) break;
  }
  const { perform, prepare, perform3, finish, confirm, kill, end } = at;
  if (perform === undefined || prepare === undefined || perform3 === undefined || finish === undefined || confirm === undefined || kill === undefined || end === undefined) return undefined;
  return {
    performAt: perform,
    performMs: end - perform,
    connectMs: prepare - perform,
    prepareMs: perform3 - prepare,
    transferMs: finish - perform3,
    finishMs: confirm - finish,
    confirmMs: kill - confirm,
    stopSourceMs: end - kill,
  };
}

/** libvirtd's log filters that `libvirtStages` needs (and little else). */
export const TRACE_LOG_FILTERS = '1:qemu.qemu_migration 1:qemu.qemu_process 3:*';
export const TRACE_LOG_OUTPUTS = '1:file:/var/log/libvirt/libvirtd.log';
