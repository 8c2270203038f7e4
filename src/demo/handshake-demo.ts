/**
 * Demo of the cryptographic core: two fresh identities run the handshake in
 * memory and exchange one encrypted MCP message each way. Prints every wire
 * message so a reader can see what travels.
 */
import { NodeIdentity } from '../identity/identity.js';
import { Handshake } from '../handshake/handshake.js';
import { Session } from '../session/session.js';
import { pinnedPeer, allowAnyPeer } from '../identity/trust.js';

const out = (line = '') => process.stdout.write(line + '\n');
const short = (s: string, n = 160) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);

const alice = NodeIdentity.generate();
const bob = NodeIdentity.generate();
out(`client (initiator) ${alice.fingerprint}  node id ${alice.nodeId}`);
out(`server (responder) ${bob.fingerprint}  node id ${bob.nodeId}`);
out();

const client = new Handshake('initiator', alice, { framings: ['json'] });
const server = new Handshake('responder', bob);

const m1 = client.start();
out(`1 client → server  ${short(m1)}`);
const m2 = server.receive(m1).send!;
out(`2 server → client  ${short(m2)}`);
const step = client.receive(m2);
pinnedPeer(bob.nodeId).verify(step.result!.peer); // the client expected exactly this server
out(`3 client → server  ${short(step.send!)}`);
const done = server.receive(step.send!).result!;
allowAnyPeer().verify(done.peer);
out();

const cs = new Session(step.result!, alice);
const ss = new Session(done, bob);
out(`session ${cs.sessionId.toString('hex')}  framing=${cs.framing}  signatures=${cs.signatures}`);
out(`client sees server ${cs.peer.fingerprint}; server sees client ${ss.peer.fingerprint}`);
out();

const request = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hello, encrypted world' } } });
const f1 = cs.seal(request);
out(`client → server  ${short(String(f1))}`);
out(`server decrypts  ${ss.open(f1)[0]!.payload.toString('utf8')}`);
const reply = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'Echo: hello, encrypted world' }] } });
const f2 = ss.seal(reply);
out(`server → client  ${short(String(f2))}`);
out(`client decrypts  ${cs.open(f2)[0]!.payload.toString('utf8')}`);
