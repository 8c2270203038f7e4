/**
 * What the message API accepts to send: a JSON-RPC 2.0 message as an object
 * or as its JSON text (the seed sends strings:
 * `send('{"jsonrpc": "2.0", "id": 1, "method": "test"}')`). Checked locally
 * with the same decoder the receiving side uses (transport/json-rpc.ts), so a
 * mistake is a TypeError at the call site, not a connection the peer closes
 * with `ERR_INVALID_MESSAGE`.
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { decodeJsonRpcMessage, encodeJsonText } from '../transport/json-rpc.js';

/** A JSON-RPC 2.0 message, or its JSON text. */
export type OutgoingMessage = JSONRPCMessage | string;

/** JSON-RPC 2.0 "Internal error" (JSON-RPC 2.0 §5.1). */
const INTERNAL_ERROR = -32603;

/**
 * The message to send, checked.
 * @throws TypeError when `message` is not a JSON-RPC 2.0 message (or its JSON text).
 */
export function toJsonRpcMessage(message: unknown): JSONRPCMessage {
  const text = typeof message === 'string' ? message : encodeJsonText(message);
  try {
    return decodeJsonRpcMessage(Buffer.from(text, 'utf8'));
  } catch (err) {
    throw new TypeError('"message" expected a JSON-RPC 2.0 message, as an object or its JSON text', { cause: err });
  }
}

/** The id of a request (a message with `method` and `id`), else undefined. */
export function requestId(message: JSONRPCMessage): string | number | undefined {
  return 'method' in message && 'id' in message ? message.id : undefined;
}

/** The error response a request gets when its handler failed. The detail stays in the local log. */
export function internalErrorResponse(id: string | number): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: { code: INTERNAL_ERROR, message: 'Internal error' } };
}
