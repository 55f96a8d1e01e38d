/**
 * libvirt's remote protocol: the numbers and wire layouts from libvirt's
 * `remote_protocol.x` / `virnetprotocol.x` (and `libvirt-domain.h` for enums
 * and flags) that Ferry's driver needs. Procedure numbers and struct layouts
 * are part of libvirt's stable wire ABI.
 *
 * A message on the socket is: length (uint32, counts itself), header, payload.
 */
import { XdrReader, XdrWriter } from './xdr.js';

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
/** Keepalive program (virkeepaliveprotocol.x): PINGs and PONGs, once a client asked for it. */
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KeepaliveProc = { PING: 1, PONG: 2 } as const;
/** virDrvFeature VIR_DRV_FEATURE_PROGRAM_KEEPALIVE: the remote side speaks the keepalive program. */
export const FEATURE_PROGRAM_KEEPALIVE = 10;

/** Length word + 6 header words. */
export const HEADER_BYTES = 28;
/** libvirt's VIR_NET_MESSAGE_MAX plus the length word: larger frames are refused. */
export const MAX_MESSAGE_BYTES = 33554432 + 4;

export const Proc = {
  CONNECT_OPEN: 1,
  CONNECT_CLOSE: 2,
  CONNECT_GET_DOMAIN_CAPABILITIES: 342,
  DOMAIN_DEFINE_XML: 11,
  DOMAIN_DESTROY: 12,
  DOMAIN_GET_XML_DESC: 14,
  DOMAIN_GET_MAX_MEMORY: 17,
  DOMAIN_LOOKUP_BY_NAME: 23,
  DOMAIN_RESUME: 28,
  CONNECT_GET_HOSTNAME: 59,
  CONNECT_SUPPORTS_FEATURE: 60,
  CONNECT_GET_URI: 110,
  DOMAIN_IS_PERSISTENT: 151,
  DOMAIN_ABORT_JOB: 164,
  DOMAIN_MIGRATE_SET_MAX_DOWNTIME: 166,
  DOMAIN_CREATE_WITH_FLAGS: 196,
  DOMAIN_MIGRATE_SET_MAX_SPEED: 207,
  DOMAIN_MIGRATE_GET_MAX_SPEED: 242,
  DOMAIN_GET_STATE: 212,
  DOMAIN_UNDEFINE_FLAGS: 231,
  CONNECT_LIST_ALL_DOMAINS: 273,
  DOMAIN_GET_JOB_STATS: 298,
  DOMAIN_MIGRATE_PERFORM3_PARAMS: 305,
  DOMAIN_MIGRATE_START_POST_COPY: 364,
} as const;
export type ProcName = keyof typeof Proc;

export const MessageType = { CALL: 0, REPLY: 1, MESSAGE: 2, STREAM: 3 } as const;
export const MessageStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;

export interface MessageHeader {
  program: number;
  version: number;
  procedure: number;
  type: number;
  serial: number;
  status: number;
}

/** A whole frame: length word, header, payload. */
export function encodeMessage(header: MessageHeader, payload: Buffer): Buffer {
  const w = new XdrWriter(HEADER_BYTES + payload.length);
  w.uint(HEADER_BYTES + payload.length)
    .uint(header.program)
    .uint(header.version)
    .int(header.procedure)
    .int(header.type)
    .uint(header.serial)
    .int(header.status);
  return Buffer.concat([w.bytes(), payload]);
}

/** Decodes the header of one frame (without its length word). */
export function decodeHeader(r: XdrReader): MessageHeader {
  return {
    program: r.uint(),
    version: r.uint(),
    procedure: r.int(),
    type: r.int(),
    serial: r.uint(),
    status: r.int(),
  };
}

// ---- data types -----------------------------------------------------------

/** `remote_nonnull_domain`: libvirt names a domain by name, UUID and live id (-1 when off). */
export interface DomainRef {
  name: string;
  uuid: Buffer;
  id: number;
}

export function writeDomain(w: XdrWriter, d: DomainRef): void {
  w.string(d.name).fixedOpaque(d.uuid, 16).int(d.id);
}

export function readDomain(r: XdrReader): DomainRef {
  return { name: r.string(), uuid: r.fixedOpaque(16), id: r.int() };
}

/** virTypedParameterType. */
export const ParamType = { INT: 1, UINT: 2, LLONG: 3, ULLONG: 4, DOUBLE: 5, BOOLEAN: 6, STRING: 7 } as const;

export type TypedParamValue =
  | { type: 'int'; value: number }
  | { type: 'uint'; value: number }
  | { type: 'llong'; value: bigint }
  | { type: 'ullong'; value: bigint }
  | { type: 'double'; value: number }
  | { type: 'boolean'; value: boolean }
  | { type: 'string'; value: string };

export type TypedParam = { field: string } & TypedParamValue;

export function writeTypedParam(w: XdrWriter, p: TypedParam): void {
  w.string(p.field);
  switch (p.type) {
    case 'int': w.int(ParamType.INT).int(p.value); break;
    case 'uint': w.int(ParamType.UINT).uint(p.value); break;
    case 'llong': w.int(ParamType.LLONG).hyper(p.value); break;
    case 'ullong': w.int(ParamType.ULLONG).uhyper(p.value); break;
    case 'double': w.int(ParamType.DOUBLE).double(p.value); break;
    case 'boolean': w.int(ParamType.BOOLEAN).bool(p.value); break;
    case 'string': w.int(ParamType.STRING).string(p.value); break;
  }
}

export function readTypedParam(r: XdrReader): TypedParam {
  const field = r.string();
  const type = r.int();
  switch (type) {
    case ParamType.INT: return { field, type: 'int', value: r.int() };
    case ParamType.UINT: return { field, type: 'uint', value: r.uint() };
    case ParamType.LLONG: return { field, type: 'llong', value: r.hyperBig() };
    case ParamType.ULLONG: return { field, type: 'ullong', value: r.uhyperBig() };
    case ParamType.DOUBLE: return { field, type: 'double', value: r.double() };
    // libvirt encodes booleans as an int that may be any non-zero value.
    case ParamType.BOOLEAN: return { field, type: 'boolean', value: r.int() !== 0 };
    case ParamType.STRING: return { field, type: 'string', value: r.string() };
    default: throw new Error(`typed parameter ${JSON.stringify(field)} has unknown type ${type}`);
  }
}

/** Typed parameters as a plain record; numbers as JS numbers (precision beyond 2^53 is not needed here). */
export function paramsToRecord(params: readonly TypedParam[]): Record<string, number | boolean | string> {
  const out: Record<string, number | boolean | string> = {};
  for (const p of params) out[p.field] = typeof p.value === 'bigint' ? Number(p.value) : p.value;
  return out;
}

/** `remote_error` (virNetMessageError). */
export interface RemoteError {
  code: number;
  domain: number;
  message: string | null;
  level: number;
  dom: DomainRef | null;
  str1: string | null;
  str2: string | null;
  str3: string | null;
  int1: number;
  int2: number;
}

export function readRemoteError(r: XdrReader): RemoteError {
  const code = r.int();
  const domain = r.int();
  const message = r.optional((x) => x.string());
  const level = r.int();
  const dom = r.optional(readDomain);
  const str1 = r.optional((x) => x.string());
  const str2 = r.optional((x) => x.string());
  const str3 = r.optional((x) => x.string());
  const int1 = r.int();
  const int2 = r.int();
  // remote_network: name + uuid, unused by the QEMU driver's errors.
  r.optional((x) => ({ name: x.string(), uuid: x.fixedOpaque(16) }));
  return { code, domain, message, level, dom, str1, str2, str3, int1, int2 };
}

// ---- enums and flags ------------------------------------------------------

/** virErrorNumber values the driver acts on. */
export const ErrorCode = {
  OPERATION_FAILED: 9,
  NO_DOMAIN: 42,
  OPERATION_INVALID: 55,
  OPERATION_ABORTED: 78,
} as const;

/** virDomainState. */
export const DomainStateCode = {
  NOSTATE: 0, RUNNING: 1, BLOCKED: 2, PAUSED: 3, SHUTDOWN: 4, SHUTOFF: 5, CRASHED: 6, PMSUSPENDED: 7,
} as const;

/** virDomainRunningReason values of interest. */
export const RunningReason = { MIGRATED: 2, MIGRATION_CANCELED: 6, POSTCOPY: 10, POSTCOPY_FAILED: 11 } as const;
/** virDomainShutoffReason values of interest. */
export const ShutoffReason = { MIGRATED: 4 } as const;
/** virDomainPausedReason values of interest. */
export const PausedReason = { USER: 1, MIGRATION: 2, STARTING_UP: 11, POSTCOPY: 12, POSTCOPY_FAILED: 13 } as const;

/** virDomainMigrateFlags. */
export const MigrateFlag = {
  LIVE: 1 << 0,
  PEER2PEER: 1 << 1,
  TUNNELLED: 1 << 2,
  PERSIST_DEST: 1 << 3,
  UNDEFINE_SOURCE: 1 << 4,
  PAUSED: 1 << 5,
  NON_SHARED_DISK: 1 << 6,
  NON_SHARED_INC: 1 << 7,
  CHANGE_PROTECTION: 1 << 8,
  UNSAFE: 1 << 9,
  OFFLINE: 1 << 10,
  COMPRESSED: 1 << 11,
  ABORT_ON_ERROR: 1 << 12,
  AUTO_CONVERGE: 1 << 13,
  POSTCOPY: 1 << 15,
} as const;

/** VIR_MIGRATE_PARAM_* names. */
export const MigrateParam = {
  URI: 'migrate_uri',
  BANDWIDTH: 'bandwidth',
  DEST_NAME: 'destination_name',
} as const;

/** virDomainJobType. */
export const JobType = { NONE: 0, BOUNDED: 1, UNBOUNDED: 2, COMPLETED: 3, FAILED: 4, CANCELLED: 5 } as const;
/** virDomainJobOperation values of interest. */
export const JobOperation = { MIGRATION_IN: 4, MIGRATION_OUT: 5 } as const;
/** virDomainGetJobStatsFlags. */
export const JobStatsFlag = { COMPLETED: 1 << 0, KEEP_COMPLETED: 1 << 1 } as const;
/** virDomainUndefineFlagsValues: managed save image and snapshot metadata go too. */
export const UndefineFlag = { MANAGED_SAVE: 1 << 0, SNAPSHOTS_METADATA: 1 << 1 } as const;

/**
 * libvirt's QEMU_DOMAIN_MIG_BANDWIDTH_MAX (MiB/s): what "unlimited" is on the
 * wire. Passing 0 would ask QEMU for no bandwidth at all.
 */
export const UNLIMITED_BANDWIDTH_MIB = 8796093022207;
