/**
 * EXPERIMENT, not the transport's behaviour: estimate what coalescing the
 * frames of one event-loop turn into one socket write would gain.
 *
 * Patches `ws`'s `WebSocket.prototype.send` in this process so that, on a
 * connection speaking `protocol`, the first send of a turn corks the TCP
 * socket and a `process.nextTick` uncorks it: every frame sent until then
 * (e.g. the replies to all requests of one received TCP chunk, delivered one
 * per microtask) leaves in one writev. `ws` corks around each frame itself;
 * corks nest, so the outer one holds. Enabled by `run.js --experiment-coalesce`
 * on both the client and the server process.
 */
import { WebSocket } from 'ws';
import { SUBPROTOCOL_ENCRYPTED } from '../src/protocol.js';

const CORKED = Symbol('bench-corked');

export function enableCoalescingExperiment(protocol: string = SUBPROTOCOL_ENCRYPTED): void {
  const proto = WebSocket.prototype as unknown as Record<string | symbol, unknown> & { send: (...args: unknown[]) => void };
  const original = proto.send;
  if ((original as { [CORKED]?: boolean })[CORKED]) return;
  const patched = function (this: WebSocket & { _socket?: import('node:net').Socket; [CORKED]?: boolean }, ...args: unknown[]) {
    const socket = this._socket;
    if (socket && !this[CORKED] && this.protocol === protocol) {
      this[CORKED] = true;
      socket.cork();
      process.nextTick(() => {
        this[CORKED] = false;
        socket.uncork();
      });
    }
    return original.apply(this, args);
  };
  (patched as unknown as { [CORKED]: boolean })[CORKED] = true;
  proto.send = patched;
}
