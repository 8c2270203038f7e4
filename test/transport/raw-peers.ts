/**
 * Hand-driven peers for hostile-input tests: a raw `ws` client or server
 * that runs the core Handshake and Session itself, so a test can send
 * exactly the bytes it wants (invalid payloads, plaintext inside a session,
 * oversized frames) and watch how the transport under test reacts.
 */
import { once } from 'node:events';
import { connect, type AddressInfo, type Socket } from 'node:net';
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

/** A WebSocket frame as a client sends it (masked, RFC 6455 §5.2), or with any header bits a test wants. */
export function clientFrame(opcode: number, payload: Buffer | string, options: { fin?: boolean; rsv?: number; mask?: boolean; declaredLength?: bigint } = {}): Buffer {
  const body = Buffer.from(payload);
  const { fin = true, rsv = 0, mask = true } = options;
  const len = options.declaredLength ?? BigInt(body.length);
  const head = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)];
  let ext = Buffer.alloc(0);
  if (len < 126n) head.push((mask ? 0x80 : 0) | Number(len));
  else if (len < 65536n) {
    head.push((mask ? 0x80 : 0) | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(len));
  } else {
    head.push((mask ? 0x80 : 0) | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(len);
  }
  const key = mask ? Buffer.from([0x12, 0x34, 0x56, 0x78]) : Buffer.alloc(0);
  if (mask) for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ key[i % 4]!;
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

/** The upgrade request of a raw TCP client. */
export function upgradeRequest(path = '/mcp', protocol: string | undefined = SUBPROTOCOL_ENCRYPTED, extraHeaders = ''): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${Buffer.alloc(16, 7).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
    (protocol === undefined ? '' : `Sec-WebSocket-Protocol: ${protocol}\r\n`) +
    extraHeaders +
    '\r\n'
  );
}

/**
 * A raw TCP peer: everything the server sends is collected in `received`;
 * `closed` resolves when the TCP connection ends, with the close frame the
 * server sent (if any).
 */
export interface RawTcpPeer {
  socket: Socket;
  received: () => Buffer;
  /** The HTTP status line of the server's answer, once it has arrived. */
  status: Promise<string>;
  closed: Promise<{ close: CloseEvent | undefined; bytes: Buffer }>;
}

/** Open a TCP connection to 127.0.0.1:port, optionally from another loopback address. */
export async function rawTcp(port: number, localAddress?: string): Promise<RawTcpPeer> {
  const socket = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  const status = deferred<string>();
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    const all = Buffer.concat(chunks);
    const eol = all.indexOf('\r\n');
    if (eol >= 0) status.resolve(all.subarray(0, eol).toString('latin1'));
  });
  // Not events.once: a reset ('error' before 'close') is a normal way for the server to cut us.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve())).then(() => {
    const bytes = Buffer.concat(chunks);
    return { close: closeFrameOf(bytes), bytes };
  });
  void closed.then(() => status.resolve(''));
  await within(once(socket, 'connect'), 5000, 'the TCP connection');
  return { socket, received: () => Buffer.concat(chunks), status: status.promise, closed };
}

/** The frames the server sent after its 101 response (server frames are unmasked); a partial last frame is left out. */
export function serverFramesOf(bytes: Buffer): Array<{ opcode: number; payload: Buffer }> {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0 || !bytes.subarray(0, 12).toString('latin1').includes('101')) return [];
  const frames: Array<{ opcode: number; payload: Buffer }> = [];
  let i = end + 4;
  while (i + 2 <= bytes.length) {
    const opcode = bytes[i]! & 0x0f;
    let len = bytes[i + 1]! & 0x7f;
    let off = i + 2;
    if (len === 126) {
      if (off + 2 > bytes.length) break;
      len = bytes.readUInt16BE(off);
      off += 2;
    } else if (len === 127) {
      if (off + 8 > bytes.length) break;
      len = Number(bytes.readBigUInt64BE(off));
      off += 8;
    }
    if (off + len > bytes.length) break;
    frames.push({ opcode, payload: bytes.subarray(off, off + len) });
    i = off + len;
  }
  return frames;
}

/** The first close frame the server sent after its 101 response. */
export function closeFrameOf(bytes: Buffer): CloseEvent | undefined {
  const close = serverFramesOf(bytes).find((f) => f.opcode === 0x8);
  if (!close) return undefined;
  return close.payload.length >= 2 ? { code: close.payload.readUInt16BE(0), reason: close.payload.subarray(2).toString('utf8') } : { code: 1005, reason: '' };
}
