/**
 * JSON-RPC messages of a chosen serialized size: a `tools/call` request whose
 * argument text is padded so the request's JSON text is `bytes` long, and the
 * echo server's reply that carries the same text back (about the same size).
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

export interface SizeSpec {
  /** Label in tables: "100 B", "1 KB", ... */
  label: string;
  /** Target size of the serialized request, bytes. */
  bytes: number;
}

export const SIZES: readonly SizeSpec[] = Object.freeze([
  { label: '100 B', bytes: 100 },
  { label: '1 KB', bytes: 1024 },
  { label: '64 KB', bytes: 64 * 1024 },
  { label: '1 MB', bytes: 1024 * 1024 },
]);

/** Padding is plain ASCII so its UTF-8 byte length equals its character length. */
function filler(n: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789 ';
  const s = alphabet.repeat(Math.ceil(n / alphabet.length) + 1);
  return s.slice(0, Math.max(0, n));
}

/** Arguments of a request whose serialization is `bytes` long with a 5-digit id (at least 99 bytes). */
export function makeArguments(bytes: number): { text: string } {
  const shell = JSON.stringify(request(12345, { text: '' }));
  return { text: filler(bytes - shell.length) };
}

export function request(id: number, args: { text: string }): JSONRPCMessage {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: args } };
}

/**
 * The echo reply to a request: what both the plaintext and the encrypted
 * echo servers send back. Anything that is not a request gets no reply.
 */
export function echoReply(msg: unknown): JSONRPCMessage | undefined {
  const m = msg as { id?: unknown; method?: unknown; params?: { arguments?: { text?: unknown } } };
  if (m === null || typeof m !== 'object' || typeof m.method !== 'string' || (typeof m.id !== 'number' && typeof m.id !== 'string')) return undefined;
  const text = typeof m.params?.arguments?.text === 'string' ? m.params.arguments.text : '';
  return { jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text }] } };
}
