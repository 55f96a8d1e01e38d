import type { RemoteError } from './protocol.js';

/** An error libvirtd returned for a call, with libvirt's own code and message. */
export class LibvirtError extends Error {
  readonly code: number;
  readonly domain: number;
  readonly procedure: string;
  readonly remote: RemoteError;

  constructor(procedure: string, remote: RemoteError) {
    super(`${procedure}: ${remote.message ?? `libvirt error code ${remote.code}`}`);
    this.name = 'LibvirtError';
    this.code = remote.code;
    this.domain = remote.domain;
    this.procedure = procedure;
    this.remote = remote;
  }

  /** libvirt's message without the procedure prefix. */
  get libvirtMessage(): string {
    return this.remote.message ?? `libvirt error code ${this.code}`;
  }
}

/** The socket to libvirtd closed (or could not be opened) before a call was answered. */
export class ConnectionClosedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConnectionClosedError';
  }
}

export function isLibvirtError(err: unknown, code?: number): err is LibvirtError {
  return err instanceof LibvirtError && (code === undefined || err.code === code);
}
