export { startNatsServer, freePort, natsServerBinary, type NatsServerHandle } from '../../src/bus/natsServer.js';
