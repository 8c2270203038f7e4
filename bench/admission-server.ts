/**
 * The server process of the admission benchmark (bench/admission.ts): an
 * `EncryptedWebSocketServer` with default limits on 127.0.0.1 that accepts
 * any peer, loaded from the library build given as argv[2] (so the same
 * benchmark can measure an older build). Controlled over IPC:
 * `{ cmd: 'stats' }` → `{ cpuUs, refusals, connections, pending }`.
 */
const lib = (await import(process.argv[2]!)) as typeof import('../src/index.js');

let refusals = 0;
const server = new lib.EncryptedWebSocketServer({
  identity: lib.NodeIdentity.generate(),
  allowAnyPeer: true,
  onConnection: async (transport) => {
    await transport.start();
  },
  // The server's onError is what an application logs: one call per refusal.
  onError: () => refusals++,
});
const address = await server.listen(0, '127.0.0.1');
process.on('message', (msg: { cmd: string }) => {
  if (msg.cmd === 'stats') {
    const cpu = process.cpuUsage();
    process.send!({ cpuUs: cpu.user + cpu.system, refusals, connections: server.connections.length, pending: server.pendingHandshakes });
  } else if (msg.cmd === 'exit') {
    void server.close().then(() => process.exit(0));
  }
});
process.send!({ ready: true, port: address.port });
