export default async function globalTeardown() {
  await globalThis.__FERRY_NATS__?.stop();
}
