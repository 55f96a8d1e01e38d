// Jest loads global setup outside its TypeScript module mapping, so the one
// nats-server the suite shares is started through tsx, from the same module
// `ferry dev` uses (src/bus/natsServer.ts).
import { tsImport } from 'tsx/esm/api';
import { ensureBuilt } from './ensureBuilt.mjs';

export default async function globalSetup() {
  ensureBuilt();
  const { startNatsServer } = await tsImport('../../src/bus/natsServer.ts', import.meta.url);
  const nats = await startNatsServer();
  process.env['NATS_URL'] = nats.url;
  globalThis.__FERRY_NATS__ = nats;
}
