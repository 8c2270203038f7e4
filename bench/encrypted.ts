/**
 * Access to the encrypted WebSocket transports in src/transport/.
 *
 * They are loaded at run time, so the benchmark builds and runs its
 * plaintext and in-process figures before (and independently of) the
 * transport; `loadTransport()` says why encrypted modes are unavailable.
 */
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { NodeIdentity, PeerIdentity } from '../src/identity/identity.js';
import type { Framing } from '../src/protocol.js';

/** The MCP SDK Transport shape, as much of it as the benchmark uses. */
export interface TransportLike {
  start(): Promise<void>;
  send(message: JSONRPCMessage): Promise<void>;
  close(): Promise<void>;
  onmessage?: ((message: JSONRPCMessage) => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  onclose?: (() => void) | undefined;
}

export interface ClientOptions {
  identity: NodeIdentity;
  expectedPeer: string;
  signatures: boolean;
  framings: Framing[];
  enableEncryption: boolean;
}

export interface ServerLike {
  listen(port: number, host: string): unknown;
  close(): unknown;
}

export interface TransportModule {
  EncryptedWebSocketClientTransport: new (url: string, options: ClientOptions) => TransportLike;
  EncryptedWebSocketServer: new (options: {
    identity: NodeIdentity;
    allowAnyPeer: boolean;
    signatures?: boolean;
    framings?: Framing[];
    onConnection: (transport: TransportLike, peer: PeerIdentity) => void;
  }) => ServerLike;
}

/** dist/src, seen from dist/bench. */
const SRC_DIR = new URL('../src/', import.meta.url);

export function transportSourcePresent(): boolean {
  return existsSync(fileURLToPath(new URL('transport/', SRC_DIR)));
}

function isTransportModule(m: Record<string, unknown>): boolean {
  return typeof m.EncryptedWebSocketClientTransport === 'function' && typeof m.EncryptedWebSocketServer === 'function';
}

/** Load the transports, or return why they are unavailable. */
export async function loadTransport(): Promise<{ module: TransportModule } | { unavailable: string }> {
  if (!transportSourcePresent()) return { unavailable: 'src/transport does not exist yet (no dist/src/transport)' };
  const found: Partial<Record<'EncryptedWebSocketClientTransport' | 'EncryptedWebSocketServer', unknown>> = {};
  const candidates = [new URL('index.js', SRC_DIR), new URL('transport/index.js', SRC_DIR)];
  const dir = fileURLToPath(new URL('transport/', SRC_DIR));
  for (const f of readdirSync(dir)) if (f.endsWith('.js')) candidates.push(new URL(`transport/${f}`, SRC_DIR));
  const errors: string[] = [];
  for (const url of candidates) {
    if (!existsSync(fileURLToPath(url))) continue;
    try {
      const m = (await import(url.href)) as Record<string, unknown>;
      if (isTransportModule(m)) return { module: m as unknown as TransportModule };
      found.EncryptedWebSocketClientTransport ??= m.EncryptedWebSocketClientTransport;
      found.EncryptedWebSocketServer ??= m.EncryptedWebSocketServer;
    } catch (err) {
      errors.push(`${fileURLToPath(url)}: ${(err as Error).message}`);
    }
  }
  if (isTransportModule(found)) return { module: found as unknown as TransportModule };
  return { unavailable: `src/transport exists but does not export EncryptedWebSocketClientTransport and EncryptedWebSocketServer${errors.length ? ` (${errors.join('; ')})` : ''}` };
}
