/**
 * Hand-driven peers for hostile-input tests: a raw `ws` client or server
 * that runs the core Handshake and Session itself, so a test can send
 * exactly the bytes it wants (invalid payloads, plaintext inside a session,
 * oversized frames) and watch how the transport under test reacts.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type ClientOptions, type RawData } from 'ws';
import { Handshake, NodeIdentity, Session, SUBPROTOCOL_ENCRYPTED, type Framing } from '../../src/index.js';
import { deferred, within } from './helpers.js';

/** How a WebSocket closed, as seen by a raw peer. */
export interface CloseEvent {
  code: number;
  reason: string;
}

/** Resolves with the close code and reason of `ws`. */
export function closeOf(ws: WebSocket, ms = 5000): Promise<CloseEvent> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.reject(new Error('already closed'));
  return within(
    once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: (reason as Buffer).toString('utf8') })),
    ms,
    'the socket to close',
  );
}

function asText(data: RawData): string {
  return Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
}

/** Open a raw WebSocket and wait for 'open'. */
export async function openRaw(url: string, protocols: string[] | undefined, options: ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, { perMessageDeflate: false, ...options });
  ws.on('error', () => {});
  await within(once(ws, 'open'), 5000, 'the raw socket to open');
  return ws;
}

/** A raw client that completes the initiator handshake by hand; returns the socket and its session. */
export async function rawClientHandshake(
  url: string,
  identity: NodeIdentity,
  options: { framings?: Framing[]; signatures?: boolean; ws?: ClientOptions } = {},
): Promise<{ ws: WebSocket; session: Session }> {
  const ws = await openRaw(url, [SUBPROTOCOL_ENCRYPTED], options.ws);
  const hs = new Handshake('initiator', identity, { framings: options.framings ?? ['binary'], signatures: options.signatures ?? false });
  const step2 = within(once(ws, 'message'), 5000, 'handshake step 2');
  ws.send(hs.start());
  const [data] = await step2;
  const step = hs.receive(asText(data as RawData));
  ws.send(step.send!);
  return { ws, session: new Session(step.result!, identity) };
}

/** A raw mcp-e2e server: completes the responder handshake by hand, then hands the socket and session to `onSession`. */
export async function startRawServer(
  identity: NodeIdentity,
  onSession: (ws: WebSocket, session: Session) => void,
  options: { framings?: Framing[] } = {},
): Promise<{ url: string; close: () => Promise<void>; closes: Array<Promise<CloseEvent>> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, handleProtocols: () => SUBPROTOCOL_ENCRYPTED });
  await once(wss, 'listening');
  const closes: Array<Promise<CloseEvent>> = [];
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    closes.push(closeOf(ws, 10_000).catch(() => ({ code: -1, reason: '' })));
    const hs = new Handshake('responder', identity, { framings: options.framings ?? ['binary', 'json'] });
    ws.on('message', function onHandshake(data) {
      const step = hs.receive(asText(data));
      if (step.send) ws.send(step.send);
      if (step.result) {
        ws.off('message', onHandshake);
        onSession(ws, new Session(step.result, identity));
      }
    });
  });
  const port = (wss.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/`,
    closes,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      const done = deferred();
      wss.close(() => done.resolve());
      await done.promise;
    },
  };
}

/** A WebSocket server that accepts any offered subprotocol and then never says a word. */
export async function startSilentServer(): Promise<{ url: string; connected: Promise<void>; firstMessage: Promise<void>; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (p) => [...p][0] ?? false });
  await once(wss, 'listening');
  const connected = deferred();
  const firstMessage = deferred();
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.once('message', () => firstMessage.resolve());
    connected.resolve();
  });
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`,
    connected: connected.promise,
    firstMessage: firstMessage.promise,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      const done = deferred();
      wss.close(() => done.resolve());
      await done.promise;
    },
  };
}
