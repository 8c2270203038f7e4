/**
 * A man-in-the-middle WebSocket relay for downgrade and tamper tests. It
 * connects upstream first (with a subprotocol offer it may rewrite), then
 * answers the client with a subprotocol of its choosing, and passes frames
 * both ways through hooks that may drop, alter, duplicate or inject frames.
 * Close codes and reasons are mirrored, so each end sees what the other
 * said.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';

export interface Frame {
  data: Buffer;
  isBinary: boolean;
}

/** What a hook can do besides rewriting: close either side with a close frame of its choosing (an attacker's forgery). */
export interface RelayControl {
  closeClient(code: number, reason: string): void;
  closeServer(code: number, reason: string): void;
}

/**
 * Rewrites one frame; returns the frames to forward instead (none, one or
 * several). `index` counts the frames of this connection in this direction;
 * `request` is the client's upgrade request (its URL can tell concurrent
 * connections apart).
 */
export type FrameHook = (frame: Frame, index: number, request: IncomingMessage, control: RelayControl) => Frame[];

export interface RelayOptions {
  /** URL of the real server. */
  upstream: string;
  /** Subprotocols to offer upstream, given the client's offer. Default: the client's offer. */
  upstreamProtocols?: (offered: string[]) => string[];
  /** Subprotocol to answer the client with, given upstream's choice ('' for none). `false`: answer with none. Default: upstream's choice. */
  answer?: (upstreamChose: string) => string | false;
  /** Client → server frames. Default: pass through. */
  toServer?: FrameHook;
  /** Server → client frames. Default: pass through. */
  toClient?: FrameHook;
  /** Called when the upstream connection of a client is open (e.g. to learn its local port). */
  onUpstreamOpen?: (request: IncomingMessage, upstream: WebSocket) => void;
}

export interface Relay {
  url: string;
  close: () => Promise<void>;
}

const pass: FrameHook = (f) => [f];

function mirrorClose(ws: WebSocket, code: number, reason: Buffer): void {
  if (ws.readyState === WebSocket.CLOSED || ws.readyState === WebSocket.CLOSING) return;
  if (code === 1005) ws.close();
  else if (code === 1006 || code < 1000) ws.terminate();
  else ws.close(code, reason);
}

/** Start a relay on 127.0.0.1:0. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const http: Server = createServer();
  const sockets = new Set<WebSocket>();
  const upstreamOf = new WeakMap<IncomingMessage, WebSocket>();
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    handleProtocols: (_offered, req) => {
      const chose = upstreamOf.get(req)?.protocol ?? '';
      const answer = options.answer ? options.answer(chose) : chose;
      return answer === '' ? false : answer;
    },
  });
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const offered = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    const protocols = options.upstreamProtocols ? options.upstreamProtocols(offered) : offered;
    const upstream = new WebSocket(options.upstream, protocols, { perMessageDeflate: false });
    sockets.add(upstream);
    upstream.on('error', () => socket.destroy());
    // Frames and a close from upstream may come before the client side is ready.
    const early: Frame[] = [];
    let earlyClose: [number, Buffer] | undefined;
    const onEarlyMessage = (data: Buffer, isBinary: boolean) => early.push({ data, isBinary });
    const onEarlyClose = (code: number, reason: Buffer) => (earlyClose = [code, reason]);
    upstream.on('message', onEarlyMessage);
    upstream.on('close', onEarlyClose);
    upstream.once('open', () => {
      options.onUpstreamOpen?.(req, upstream);
      upstreamOf.set(req, upstream);
      wss.handleUpgrade(req, socket, head, (client) => {
        sockets.add(client);
        client.on('error', () => {});
        upstream.off('message', onEarlyMessage);
        upstream.off('close', onEarlyClose);
        let up = 0;
        let down = 0;
        const toServer = options.toServer ?? pass;
        const toClient = options.toClient ?? pass;
        const control: RelayControl = {
          closeClient: (code, reason) => client.close(code, reason),
          closeServer: (code, reason) => upstream.close(code, reason),
        };
        const forwardDown = (f: Frame) => {
          for (const out of toClient(f, down++, req, control)) if (client.readyState === WebSocket.OPEN) client.send(out.data, { binary: out.isBinary });
        };
        client.on('message', (data: Buffer, isBinary) => {
          for (const out of toServer({ data, isBinary }, up++, req, control)) if (upstream.readyState === WebSocket.OPEN) upstream.send(out.data, { binary: out.isBinary });
        });
        upstream.on('message', (data: Buffer, isBinary) => forwardDown({ data, isBinary }));
        client.on('close', (code, reason) => mirrorClose(upstream, code, reason));
        upstream.on('close', (code, reason) => mirrorClose(client, code, reason));
        early.forEach(forwardDown);
        if (earlyClose) mirrorClose(client, ...earlyClose);
      });
    });
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  return {
    url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    close: async () => {
      for (const s of sockets) s.terminate();
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    },
  };
}

/** A frame carrying `text` in a WebSocket text frame. */
export function textFrame(text: string): Frame {
  return { data: Buffer.from(text, 'utf8'), isBinary: false };
}

/** Change one field of a JSON handshake message. */
export function editJson(frame: Frame, edit: (doc: Record<string, unknown>) => void): Frame {
  const doc = JSON.parse(frame.data.toString('utf8')) as Record<string, unknown>;
  edit(doc);
  return textFrame(JSON.stringify(doc));
}

/** Flip the lowest bit of the hex digit at `index` of a hex string. */
export function flipHex(hex: string, index = 0): string {
  const c = parseInt(hex[index]!, 16) ^ 1;
  return hex.slice(0, index) + c.toString(16) + hex.slice(index + 1);
}
