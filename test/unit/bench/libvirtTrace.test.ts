import { libvirtStages } from '../../bench/libvirtTrace.js';

/** The source daemon's lines of one peer-to-peer migration, as libvirt 9 logs them at level 1 (abridged). */
const LOG = [
  '2026-12-03 21:48:24.700+0000: 3012: debug : qemuMigrationSrcRestoreDomainState:230 : an earlier migration ending',
  '2026-12-03 21:48:24.754+0000: 3012: debug : qemuMigrationSrcPerform:6226 : driver=0x1, conn=0x2, vm=0x3',
  '2026-12-03 21:48:24.758+0000: 3012: debug : qemuMigrationSrcPerformPeer2Peer3:5577 : Prepare3 0x7f649c00e530',
  '  <cookie continued on a line without a stamp/>',
  '2026-12-03 21:48:24.981+0000: 3012: debug : qemuMigrationSrcPerformPeer2Peer3:5643 : Perform3 0x7f6490002ed0 uri=tcp://127.0.0.1:46631',
  '2026-12-03 21:48:25.011+0000: 3012: debug : qemuMigrationSrcPerformPeer2Peer3:5691 : Finish3 0x7f649c00e530 ret=0',
  '2026-12-03 21:48:25.020+0000: 3012: debug : qemuMigrationSrcPerformPeer2Peer3:5771 : Confirm3 0x7f6490002ed0 cancelled=0 vm=0x3',
  '2026-12-03 21:48:25.021+0000: 3012: debug : qemuProcessKill:8268 : vm=0x3 name=default_vm-1 pid=3092 flags=0x5',
  '2026-12-03 21:48:26.624+0000: 3012: debug : qemuMigrationSrcRestoreDomainState:230 : pre-mig-state=running, state=shutoff',
  '2026-12-03 21:48:26.652+0000: 3012: debug : qemuMigrationSrcPerform:6226 : the next migration, outside the window',
].join('\n');

const at = (t: string) => Date.parse(`2026-12-03T${t}Z`);

describe('libvirtStages (bench:libvirt --trace)', () => {
  test('splits one perform call into its steps, in the window asked for', () => {
    expect(libvirtStages(LOG, at('21:48:24.750'), at('21:48:26.640'))).toEqual({
      performAt: at('21:48:24.754'),
      performMs: 1870,
      connectMs: 4,
      prepareMs: 223,
      transferMs: 30,
      finishMs: 9,
      confirmMs: 1,
      stopSourceMs: 1603,
    });
  });

  test('a window without a whole migration gives nothing (tracing off, or the call still running)', () => {
    expect(libvirtStages(LOG, at('21:48:24.750'), at('21:48:25.015'))).toBeUndefined();
    expect(libvirtStages('', 0, Date.now())).toBeUndefined();
  });
});
