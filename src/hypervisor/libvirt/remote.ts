import { RpcConnection, type KeepaliveOptions } from './connection.js';
import {
  FEATURE_PROGRAM_KEEPALIVE,
  Proc, readDomain, readTypedParam, writeDomain, writeTypedParam,
  type DomainRef, type ProcName, type TypedParam,
} from './protocol.js';
import { XdrWriter, type XdrReader } from './xdr.js';

export interface DomainStateReply {
  state: number;
  reason: number;
}

export interface JobStatsReply {
  /** virDomainJobType. */
  type: number;
  params: TypedParam[];
}

/**
 * A typed client for the handful of libvirt remote procedures Ferry uses,
 * over one multiplexed connection. Each method is one RPC; nothing is cached.
 */
/**
 * How long an ordinary call may take. The perform call is exempt: it lasts as
 * long as the migration.
 */
export const DEFAULT_CALL_TIMEOUT_MS = 60_000;
/** libvirt's own client defaults (keepalive_interval 5, keepalive_count 5). */
export const DEFAULT_KEEPALIVE: KeepaliveOptions = { intervalMs: 5000, count: 5 };

export class LibvirtRemote {
  private constructor(private readonly conn: RpcConnection, private readonly callTimeoutMs: number) {}

  /**
   * Connects to libvirtd's unix socket and opens `uri` on it (the URI the
   * daemon serves, `qemu:///system` for the QEMU driver).
   */
  static async open(
    socketPath: string,
    uri = 'qemu:///system',
    opts: { connectTimeoutMs?: number; callTimeoutMs?: number; keepalive?: KeepaliveOptions | false } = {},
  ): Promise<LibvirtRemote> {
    const conn = await RpcConnection.connect(socketPath, opts.connectTimeoutMs);
    const remote = new LibvirtRemote(conn, opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
    try {
      await remote.call('CONNECT_OPEN', (w) => w.optional(uri, (x, v) => x.string(v)).uint(0));
    } catch (err) {
      await conn.close();
      throw err;
    }
    const keepalive = opts.keepalive ?? DEFAULT_KEEPALIVE;
    if (keepalive && (await remote.supportsFeature(FEATURE_PROGRAM_KEEPALIVE))) {
      conn.startKeepalive(keepalive);
      remote.keepalive = true;
    }
    return remote;
  }

  /** The daemon agreed to keepalive on this connection. */
  keepalive = false;

  /** virConnectSupportsFeature; a daemon that cannot say is taken as "no". */
  async supportsFeature(feature: number): Promise<boolean> {
    try {
      const r = await this.call('CONNECT_SUPPORTS_FEATURE', (w) => w.int(feature));
      const v = r.int();
      r.end('CONNECT_SUPPORTS_FEATURE');
      return v === 1;
    } catch (err) {
      if (this.conn.closed) throw err;
      return false;
    }
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  onClose(listener: (reason: Error) => void): () => void {
    return this.conn.onClose(listener);
  }

  /** Says goodbye to the daemon, then closes the socket. */
  async close(): Promise<void> {
    if (this.conn.closed) return;
    try {
      await this.call('CONNECT_CLOSE');
    } catch {
      // The socket goes away either way.
    }
    await this.conn.close();
  }

  /** `timeoutMs` null: no timeout (the migration call). */
  private async call(proc: ProcName, args?: (w: XdrWriter) => void, timeoutMs: number | null = this.callTimeoutMs): Promise<XdrReader> {
    const w = new XdrWriter();
    args?.(w);
    return this.conn.call(Proc[proc], proc, w.bytes(), timeoutMs ?? undefined);
  }

  private async callVoid(proc: ProcName, args?: (w: XdrWriter) => void): Promise<void> {
    const r = await this.call(proc, args);
    r.end(proc);
  }

  async hostname(): Promise<string> {
    const r = await this.call('CONNECT_GET_HOSTNAME');
    const v = r.string();
    r.end('CONNECT_GET_HOSTNAME');
    return v;
  }

  /** What the hypervisor offers a domain with the host's default emulator (virConnectGetDomainCapabilities; no virttype: libvirt's default). */
  async domainCapabilities(virttype?: string): Promise<string> {
    const str = (w: XdrWriter, v: string | undefined) => w.optional(v, (x, s) => x.string(s));
    const r = await this.call('CONNECT_GET_DOMAIN_CAPABILITIES', (w) => {
      str(w, undefined); // emulator binary
      str(w, undefined); // arch
      str(w, undefined); // machine
      str(w, virttype).uint(0);
    });
    const v = r.string();
    r.end('CONNECT_GET_DOMAIN_CAPABILITIES');
    return v;
  }

  async uri(): Promise<string> {
    const r = await this.call('CONNECT_GET_URI');
    const v = r.string();
    r.end('CONNECT_GET_URI');
    return v;
  }

  async lookupDomainByName(name: string): Promise<DomainRef> {
    const r = await this.call('DOMAIN_LOOKUP_BY_NAME', (w) => w.string(name));
    const d = readDomain(r);
    r.end('DOMAIN_LOOKUP_BY_NAME');
    return d;
  }

  /** All domains, running and defined (flags 0 = no filter). */
  async listAllDomains(flags = 0): Promise<DomainRef[]> {
    const r = await this.call('CONNECT_LIST_ALL_DOMAINS', (w) => w.int(1).uint(flags));
    const domains = r.array(readDomain);
    r.uint();
    r.end('CONNECT_LIST_ALL_DOMAINS');
    return domains;
  }

  async defineXml(xml: string): Promise<DomainRef> {
    const r = await this.call('DOMAIN_DEFINE_XML', (w) => w.string(xml));
    const d = readDomain(r);
    r.end('DOMAIN_DEFINE_XML');
    return d;
  }

  /** Starts a defined domain; returns it with its new live id. */
  async createDomain(dom: DomainRef, flags = 0): Promise<DomainRef> {
    const r = await this.call('DOMAIN_CREATE_WITH_FLAGS', (w) => { writeDomain(w, dom); w.uint(flags); });
    const d = readDomain(r);
    r.end('DOMAIN_CREATE_WITH_FLAGS');
    return d;
  }

  resume(dom: DomainRef): Promise<void> {
    return this.callVoid('DOMAIN_RESUME', (w) => writeDomain(w, dom));
  }

  destroy(dom: DomainRef): Promise<void> {
    return this.callVoid('DOMAIN_DESTROY', (w) => writeDomain(w, dom));
  }

  undefine(dom: DomainRef, flags = 0): Promise<void> {
    return this.callVoid('DOMAIN_UNDEFINE_FLAGS', (w) => { writeDomain(w, dom); w.uint(flags); });
  }

  async getState(dom: DomainRef): Promise<DomainStateReply> {
    const r = await this.call('DOMAIN_GET_STATE', (w) => { writeDomain(w, dom); w.uint(0); });
    const v = { state: r.int(), reason: r.int() };
    r.end('DOMAIN_GET_STATE');
    return v;
  }

  async isPersistent(dom: DomainRef): Promise<boolean> {
    const r = await this.call('DOMAIN_IS_PERSISTENT', (w) => writeDomain(w, dom));
    const v = r.int();
    r.end('DOMAIN_IS_PERSISTENT');
    return v === 1;
  }

  /** Maximum memory in KiB. */
  async getMaxMemoryKiB(dom: DomainRef): Promise<number> {
    const r = await this.call('DOMAIN_GET_MAX_MEMORY', (w) => writeDomain(w, dom));
    const v = r.uhyper();
    r.end('DOMAIN_GET_MAX_MEMORY');
    return v;
  }

  async getXmlDesc(dom: DomainRef, flags = 0): Promise<string> {
    const r = await this.call('DOMAIN_GET_XML_DESC', (w) => { writeDomain(w, dom); w.uint(flags); });
    const v = r.string();
    r.end('DOMAIN_GET_XML_DESC');
    return v;
  }

  async getJobStats(dom: DomainRef, flags = 0): Promise<JobStatsReply> {
    const r = await this.call('DOMAIN_GET_JOB_STATS', (w) => { writeDomain(w, dom); w.uint(flags); });
    const v = { type: r.int(), params: r.array(readTypedParam) };
    r.end('DOMAIN_GET_JOB_STATS');
    return v;
  }

  /**
   * Peer-to-peer migration driven by the source daemon (virDomainMigrateToURI3
   * with VIR_MIGRATE_PEER2PEER). Resolves only when the migration has ended.
   */
  async migratePerform3Params(dom: DomainRef, destUri: string, params: readonly TypedParam[], flags: number): Promise<void> {
    const r = await this.call('DOMAIN_MIGRATE_PERFORM3_PARAMS', (w) => {
      writeDomain(w, dom);
      w.optional(destUri, (x, v) => x.string(v));
      w.array(params, writeTypedParam);
      w.opaque(Buffer.alloc(0));
      w.uint(flags);
    }, null);
    r.opaque();
    r.end('DOMAIN_MIGRATE_PERFORM3_PARAMS');
  }

  /** Bandwidth in MiB/s, applied to the running migration at once. */
  migrateSetMaxSpeed(dom: DomainRef, mibPerSecond: number): Promise<void> {
    return this.callVoid('DOMAIN_MIGRATE_SET_MAX_SPEED', (w) => { writeDomain(w, dom); w.uhyper(mibPerSecond).uint(0); });
  }

  /** Bandwidth in MiB/s the domain's (current or next) migration is held to. */
  async migrateGetMaxSpeed(dom: DomainRef): Promise<number> {
    const r = await this.call('DOMAIN_MIGRATE_GET_MAX_SPEED', (w) => { writeDomain(w, dom); w.uint(0); });
    const v = r.uhyper();
    r.end('DOMAIN_MIGRATE_GET_MAX_SPEED');
    return v;
  }

  migrateSetMaxDowntime(dom: DomainRef, ms: number): Promise<void> {
    return this.callVoid('DOMAIN_MIGRATE_SET_MAX_DOWNTIME', (w) => { writeDomain(w, dom); w.uhyper(ms).uint(0); });
  }

  migrateStartPostCopy(dom: DomainRef): Promise<void> {
    return this.callVoid('DOMAIN_MIGRATE_START_POST_COPY', (w) => { writeDomain(w, dom); w.uint(0); });
  }

  abortJob(dom: DomainRef): Promise<void> {
    return this.callVoid('DOMAIN_ABORT_JOB', (w) => writeDomain(w, dom));
  }
}
