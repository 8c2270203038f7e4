/**
 * Strict decoding of message payloads. Bytes must be UTF-8 (a fatal decoder:
 * no silent U+FFFD replacement that could make two different byte strings
 * read as the same message), then JSON, then, for MCP, one JSON-RPC 2.0
 * message by the rules of PROTOCOL.md §6.7: what the MCP SDK accepts
 * (v1 `@modelcontextprotocol/sdk` and v2 `@modelcontextprotocol/core`, their
 * `JSONRPCMessageSchema`), checked here without loading either SDK, plus an
 * error response with `"id": null` (JSON-RPC 2.0 §5), which both refuse.
 * A message is passed on unchanged (the SDKs' parsers strip unknown members
 * of nested objects; this check never rewrites anything).
 */
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
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

type JsonObject = Record<string, unknown>;
const has = Object.hasOwn as (o: object, key: string) => boolean;

/** A JSON object: not null, not an array. */
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A JSON-RPC integer: a number whose value is an integer of magnitude at most 2^53 - 1 (`1.0` and `1e0` count). */
const isInteger = (v: unknown): v is number => Number.isSafeInteger(v);
const isId = (v: unknown) => typeof v === 'string' || isInteger(v);
const RELATED_TASK = 'io.modelcontextprotocol/related-task';

/** The members a message of each kind may have (PROTOCOL.md §6.7); `jsonrpc` is required in all. */
const REQUEST_MEMBERS = new Set(['jsonrpc', 'id', 'method', 'params']);
const RESULT_MEMBERS = new Set(['jsonrpc', 'id', 'result']);
const ERROR_MEMBERS = new Set(['jsonrpc', 'id', 'error']);

function onlyMembers(o: JsonObject, allowed: ReadonlySet<string>): boolean {
  for (const k in o) if (!allowed.has(k)) return false;
  return true;
}

/** `params` of a request or notification, with the `_meta` members both SDKs check. */
function paramsProblem(params: unknown): string | undefined {
  if (!isObject(params)) return 'params is not an object';
  if (!has(params, '_meta')) return undefined;
  const meta = params._meta;
  if (!isObject(meta)) return 'params._meta is not an object';
  if (has(meta, 'progressToken') && !isId(meta.progressToken)) return 'params._meta.progressToken is neither a string nor an integer';
  if (has(meta, RELATED_TASK)) {
    const task = meta[RELATED_TASK];
    if (!isObject(task) || typeof task.taskId !== 'string' || !has(task, 'taskId')) return `params._meta["${RELATED_TASK}"] has no string taskId`;
  }
  return undefined;
}

/**
 * Why `value` is not one JSON-RPC 2.0 message of MCP (PROTOCOL.md §6.7),
 * or undefined when it is one.
 */
export function jsonRpcProblem(value: unknown): string | undefined {
  if (Array.isArray(value)) return 'a batch (JSON array); batches are not accepted';
  if (!isObject(value)) return 'not a JSON object';
  if (value.jsonrpc !== '2.0' || !has(value, 'jsonrpc')) return 'jsonrpc is not "2.0"';
  if (has(value, 'method')) {
    // A request (with id) or a notification (without).
    if (!onlyMembers(value, REQUEST_MEMBERS)) return 'a request or notification with members other than jsonrpc, id, method, params';
    if (typeof value.method !== 'string') return 'method is not a string';
    if (has(value, 'id') && !isId(value.id)) return 'id is neither a string nor an integer';
    return has(value, 'params') ? paramsProblem(value.params) : undefined;
  }
  if (has(value, 'result')) {
    if (!onlyMembers(value, RESULT_MEMBERS) || !has(value, 'id')) return 'a result response without id or with members other than jsonrpc, id, result';
    if (!isId(value.id)) return 'id is neither a string nor an integer';
    const result = value.result;
    if (!isObject(result)) return 'result is not an object';
    if (has(result, '_meta') && !isObject(result._meta)) return 'result._meta is not an object';
    return undefined;
  }
  if (has(value, 'error')) {
    if (!onlyMembers(value, ERROR_MEMBERS)) return 'an error response with members other than jsonrpc, id, error';
    // JSON-RPC 2.0 §5: null when the request's id could not be read. MCP's SDKs refuse it; we pass it on.
    if (has(value, 'id') && value.id !== null && !isId(value.id)) return 'id is neither a string, an integer nor null';
    const error = value.error;
    if (!isObject(error)) return 'error is not an object';
    if (!isInteger(error.code)) return 'error.code is not an integer';
    if (typeof error.message !== 'string') return 'error.message is not a string';
    return undefined;
  }
  return 'neither method, result nor error';
}

/** True when `value` is one JSON-RPC 2.0 message of MCP (PROTOCOL.md §6.7). */
export function isJsonRpcMessage(value: unknown): value is JSONRPCMessage {
  return jsonRpcProblem(value) === undefined;
}

/** Decode one MCP message. @throws McpE2eError `ERR_INVALID_MESSAGE` (bad UTF-8, bad JSON, not JSON-RPC 2.0 by §6.7). */
export function decodeJsonRpcMessage(bytes: Uint8Array): JSONRPCMessage {
  const value = decodeJson(bytes);
  const problem = jsonRpcProblem(value);
  if (problem !== undefined) throw invalid(`not a JSON-RPC 2.0 message: ${problem}`);
  return value as JSONRPCMessage;
}

/** The `type` of a control message (PROTOCOL.md §6.9): lowercase ASCII, 1 to 64 characters. */
const CONTROL_TYPE_RE = /^[a-z][a-z0-9._-]{0,63}$/;

/** A control message: a JSON object whose `type` names it (PROTOCOL.md §6.9). */
export interface ControlMessage {
  type: string;
  [member: string]: unknown;
}

/** Why `value` is not a control message, or undefined when it is one. */
export function controlMessageProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'not a JSON object';
  if (!has(value, 'type') || typeof value.type !== 'string' || !CONTROL_TYPE_RE.test(value.type)) return 'type is not 1-64 characters of [a-z0-9._-] starting with a letter';
  return undefined;
}

/** Decode one control message. @throws McpE2eError `ERR_INVALID_MESSAGE` (bad UTF-8, bad JSON, not a control message by §6.9). */
export function decodeControlMessage(bytes: Uint8Array): ControlMessage {
  const value = decodeJson(bytes);
  const problem = controlMessageProblem(value);
  if (problem !== undefined) throw invalid(`not a control message: ${problem}`);
  return value as ControlMessage;
}

/** Encode one message as JSON text. @throws TypeError when `value` cannot be serialised. */
export function encodeJsonText(value: unknown): string {
  const text = JSON.stringify(value);
  if (typeof text !== 'string') throw new TypeError('"message" expected a JSON-serialisable value');
  return text;
}

/** Encode one message as UTF-8 JSON. @throws TypeError when `value` cannot be serialised. */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(encodeJsonText(value), 'utf8');
}
