/**
 * Strict decoding of message payloads. Bytes must be UTF-8 (a fatal decoder:
 * no silent U+FFFD replacement that could make two different byte strings
 * read as the same message), then JSON, then — for MCP — a JSON-RPC 2.0
 * message as the SDK's own `JSONRPCMessageSchema` defines it.
 */
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { McpE2eError } from '../errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

function invalid(why: string): McpE2eError {
  return new McpE2eError('ERR_INVALID_MESSAGE', `invalid message: ${why}`);
}

/** Decode UTF-8 JSON. @throws McpE2eError `ERR_INVALID_MESSAGE`. */
export function decodeJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw invalid('not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw invalid('not valid JSON');
  }
}

/** Decode one MCP message. @throws McpE2eError `ERR_INVALID_MESSAGE` (bad UTF-8, bad JSON, not JSON-RPC 2.0). */
export function decodeJsonRpcMessage(bytes: Uint8Array): JSONRPCMessage {
  const parsed = JSONRPCMessageSchema.safeParse(decodeJson(bytes));
  if (!parsed.success) throw invalid('not a JSON-RPC 2.0 message');
  return parsed.data;
}

/** Encode one message as JSON text. @throws TypeError when `value` cannot be serialised. */
export function encodeJsonText(value: unknown): string {
  const text = JSON.stringify(value);
  if (typeof text !== 'string') throw new TypeError('"message" expected a JSON-serialisable value');
  return text;
}

/** Encode one message as UTF-8 JSON. @throws TypeError when `value` cannot be serialised. */
export function encodeJson(value: unknown): Buffer {
  const text = JSON.stringify(value);
  if (typeof text !== 'string') throw new TypeError('"message" expected a JSON-serialisable value');
  return Buffer.from(text, 'utf8');
}
