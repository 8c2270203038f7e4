/**
 * DNS-SD over multicast DNS for `_mcp-e2e._tcp` (RFC 6762, RFC 6763;
 * PROTOCOL.md §13.11): the names, the TXT record a node announces, the
 * queries a browser sends, and the strict reading of what comes back. Pure:
 * bytes in, records or `undefined` out; nothing here throws on network
 * input (hostile input is normal input), and nothing does I/O.
 *
 * What an announcement carries is a hint: a node id, a port, an optional
 * path and identity key. The optional key lets a browser drop a service
 * whose `id` is not SHA-256(key); it proves nothing about who answers at
 * the address, which only a handshake pinned to the node id does.
 */
import { decode as decodeDnsPacket, encode as encodeDnsPacket, type Answer, type DecodedPacket } from 'dns-packet';
import { sha256, KEY_BYTES } from '../../crypto/primitives.js';
import { isNodeId } from '../../identity/identity.js';
import { isRecordAddress } from '../record.js';

/** The mDNS port and groups (RFC 6762 §3). */
export const MDNS_PORT = 5353;
export const MDNS_IPV4_GROUP = '224.0.0.251';
export const MDNS_IPV6_GROUP = 'ff02::fb';
/** The DNS-SD service type, without the domain (RFC 6763 §7; `mcp-e2e` is a valid RFC 6335 §5.1 name). */
export const SERVICE_TYPE = '_mcp-e2e._tcp';
/** The name browsers query: `_mcp-e2e._tcp.local`. */
export const SERVICE_NAME = `${SERVICE_TYPE}.local`;
/** The value of `txtvers` this implementation writes and reads. */
export const TXT_VERSION = '1';
/** Longest DNS label, bytes (RFC 1035 §2.3.4): the limit of an instance name. */
export const MAX_LABEL_BYTES = 63;
/** Longest TXT record we read, bytes in all (RFC 6763 §6.2 advises at most 1300). Longer ones are refused. */
export const MAX_TXT_BYTES = 1300;
/** Largest mDNS packet we read, bytes (RFC 6762 §17: 9000 bytes including IP and UDP headers). */
export const MAX_MDNS_PACKET_BYTES = 9000;
/** Hex digits of the node id in an instance name (48 bits: enough to keep two nodes' default names apart). */
const INSTANCE_ID_HEX = 12;

/** What a node states in its TXT record (RFC 6763 §6; keys at most 9 characters). */
export interface ServiceTxt {
  /** The node id, 64 lowercase hex digits. */
  nodeId: string;
  /** Protocol versions spoken (PROTOCOL.md §3.1), 1..8 strictly increasing. */
  protocolVersions: number[];
  /** The HTTP path of the WebSocket endpoint, when not `/`. */
  path?: string | undefined;
  /** The raw 32-byte Ed25519 identity key; when present, `nodeId` = SHA-256(key). */
  publicKey?: Buffer | undefined;
  /** `wss` when the endpoint is TLS; `ws` otherwise (the default, not written). */
  scheme?: 'ws' | 'wss' | undefined;
}

/** Why a TXT record was refused (counted by the browser). */
export type TxtRefusal = 'txt-too-large' | 'txt-version' | 'txt-node-id' | 'txt-versions' | 'txt-path' | 'txt-key' | 'txt-id-mismatch' | 'txt-scheme';

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

// Controls, bidirectional formatting, line separators, BOM (the code points §13.2.2 forbids in text).
// eslint-disable-next-line no-control-regex
const UNSHOWABLE_RE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\\]/g;

/** A name from the network made safe to show: code points that could make it display as something else (and `\`) as `\u{XXXX}` escapes. */
export function displayName(name: string): string {
  return name.replace(UNSHOWABLE_RE, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

/** Truncate UTF-8 text to at most `max` bytes without cutting a character. */
function truncateUtf8(text: string, max: number): string {
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/**
 * The instance name a node announces: `<name>-<first 12 hex digits of the
 * node id>`, at most 63 bytes (RFC 6763 §4.1.1: any UTF-8, meant for people).
 * Dots, controls and formatting characters in `name` become `-` so the label
 * shows as what it is; an empty name becomes `mcp-e2e`. Never identity: a
 * responder renames it on a conflict (`name (2)`), and anyone can claim any.
 */
export function instanceNameFor(name: string, nodeId: string): string {
  const suffix = `-${nodeId.slice(0, INSTANCE_ID_HEX)}`;
  const clean = name.replace(UNSHOWABLE_RE, '-').replace(/\./g, '-').trim() || 'mcp-e2e';
  return truncateUtf8(clean, MAX_LABEL_BYTES - suffix.length) + suffix;
}

/** The host name (without `.local`) a node's SRV record points at: `mcp-e2e-<12 hex>`, so it never competes for the machine's own name. */
export function hostNameFor(nodeId: string): string {
  return `mcp-e2e-${nodeId.slice(0, INSTANCE_ID_HEX)}`;
}

/** Lowercase a DNS name for comparison (DNS names compare case-insensitively, RFC 4343; ASCII only). */
export function canonicalName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/\.$/, '');
}

/** The instance label of a full service instance name (`X._mcp-e2e._tcp.local` → `X`), or undefined if it is not one of ours. */
export function instanceLabelOf(fullName: string): string | undefined {
  const suffix = `.${SERVICE_NAME}`;
  const lower = canonicalName(fullName);
  if (!lower.endsWith(suffix) || lower.length === suffix.length) return undefined;
  const label = fullName.slice(0, fullName.length - suffix.length - (fullName.endsWith('.') ? 1 : 0));
  return Buffer.byteLength(label, 'utf8') <= MAX_LABEL_BYTES ? label : undefined;
}

// ---------------------------------------------------------------------------------------------
// TXT
// ---------------------------------------------------------------------------------------------

const PATH_RE = /^\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$/;

/**
 * The TXT strings of `txt`, `txtvers` first (RFC 6763 §6.7), as `key=value`
 * pairs in the order written: txtvers, id, pv, key, path, sch.
 * @throws RangeError for fields no browser would accept.
 */
export function encodeTxt(txt: ServiceTxt): Array<[string, string]> {
  if (!isNodeId(txt.nodeId)) throw new RangeError('"nodeId" expected 64 lowercase hex digits');
  const pv = txt.protocolVersions;
  if (!Array.isArray(pv) || pv.length < 1 || pv.length > 8 || pv.some((v, i) => !Number.isInteger(v) || v < 1 || v > 0xffff || (i > 0 && v <= pv[i - 1]!))) {
    throw new RangeError('"protocolVersions" expected 1..8 strictly increasing integers 1..65535');
  }
  const pairs: Array<[string, string]> = [
    ['txtvers', TXT_VERSION],
    ['id', txt.nodeId],
    ['pv', pv.join(',')],
  ];
  if (txt.publicKey !== undefined) {
    if (txt.publicKey.length !== KEY_BYTES || sha256(txt.publicKey).toString('hex') !== txt.nodeId) throw new RangeError('"publicKey" expected the 32-byte key whose SHA-256 is "nodeId"');
    pairs.push(['key', txt.publicKey.toString('base64url')]);
  }
  if (txt.path !== undefined && txt.path !== '/') {
    if (!PATH_RE.test(txt.path) || txt.path.length > 200) throw new RangeError('"path" expected an absolute URL path of at most 200 characters');
    pairs.push(['path', txt.path]);
  }
  if (txt.scheme === 'wss') pairs.push(['sch', 'wss']);
  return pairs;
}

/**
 * Read a TXT record (the character-strings as received) strictly: `txtvers=1`,
 * `id` of 64 lowercase hex digits, `pv` a strictly increasing list, an optional
 * `path` of the URL path grammar, an optional `key` (base64url of 32 bytes)
 * whose SHA-256 must be `id`, an optional `sch=wss`. Keys compare
 * case-insensitively and only a key's first occurrence counts (RFC 6763
 * §6.4); unknown keys are ignored (later versions add them).
 * @returns the fields, or the reason for refusing them.
 */
export function parseTxt(strings: readonly Uint8Array[]): ServiceTxt | TxtRefusal {
  let total = 0;
  for (const s of strings) total += s.length + 1;
  if (total > MAX_TXT_BYTES) return 'txt-too-large';
  const values = new Map<string, string>();
  for (const s of strings) {
    const text = Buffer.from(s).toString('latin1');
    const eq = text.indexOf('=');
    const key = (eq < 0 ? text : text.slice(0, eq)).toLowerCase();
    if (key.length === 0 || values.has(key)) continue;
    values.set(key, eq < 0 ? '' : text.slice(eq + 1));
  }
  if (values.get('txtvers') !== TXT_VERSION) return 'txt-version';
  const nodeId = values.get('id');
  if (!isNodeId(nodeId)) return 'txt-node-id';
  const pvText = values.get('pv');
  if (pvText === undefined || !/^[1-9][0-9]{0,4}(,[1-9][0-9]{0,4}){0,7}$/.test(pvText)) return 'txt-versions';
  const protocolVersions = pvText.split(',').map(Number);
  if (protocolVersions.some((v, i) => v > 0xffff || (i > 0 && v <= protocolVersions[i - 1]!))) return 'txt-versions';
  const out: ServiceTxt = { nodeId, protocolVersions };
  const path = values.get('path');
  if (path !== undefined) {
    if (!PATH_RE.test(path) || path.length > 200) return 'txt-path';
    out.path = path;
  }
  const key = values.get('key');
  if (key !== undefined) {
    if (!/^[A-Za-z0-9_-]{43}$/.test(key)) return 'txt-key';
    const raw = Buffer.from(key, 'base64url');
    if (raw.length !== KEY_BYTES || raw.toString('base64url') !== key) return 'txt-key';
    if (sha256(raw).toString('hex') !== nodeId) return 'txt-id-mismatch';
    out.publicKey = raw;
  }
  const sch = values.get('sch');
  if (sch !== undefined) {
    if (sch !== 'ws' && sch !== 'wss') return 'txt-scheme';
    out.scheme = sch;
  }
  return out;
}

/** The URL of an endpoint at `address` (IPv4, or IPv6 without a zone) and `port`, or undefined if the record grammar would refuse it. */
export function endpointUrl(address: string, family: 4 | 6, port: number, txt: Pick<ServiceTxt, 'path' | 'scheme'>): string | undefined {
  const host = family === 6 ? `[${address.toLowerCase()}]` : address;
  const url = `${txt.scheme ?? 'ws'}://${host}:${port}${txt.path ?? ''}`;
  return isRecordAddress(url) ? url : undefined;
}

// ---------------------------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------------------------

/** One record of a response that concerns `_mcp-e2e._tcp` browsing, TTL in seconds. */
export type BrowseRecord =
  /** `label`: the instance label as announced, made safe to show (`displayName`). */
  | { kind: 'ptr'; instance: string; label: string; ttl: number }
  | { kind: 'srv'; instance: string; host: string; port: number; ttl: number; flush: boolean }
  | { kind: 'txt'; instance: string; strings: Buffer[]; ttl: number; flush: boolean }
  | { kind: 'addr'; host: string; address: string; family: 4 | 6; ttl: number; flush: boolean };

/**
 * The browse records of a received packet (see `browseRecords`; none for a
 * query), or undefined for bytes that are over the size cap or no DNS
 * message at all (the caller counts those). Never throws.
 */
export function readPacket(bytes: Buffer): BrowseRecord[] | undefined {
  if (bytes.length > MAX_MDNS_PACKET_BYTES) return undefined;
  let packet: DecodedPacket;
  try {
    packet = decodeDnsPacket(bytes);
  } catch {
    return undefined;
  }
  return browseRecords(packet);
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * The records of a response that a `_mcp-e2e._tcp` browser uses, from its
 * answer and additional sections: PTRs of the service name, SRVs and TXTs of
 * its instances, A/AAAA of any host (the browser keeps only hosts its SRVs
 * name). Queries, records of other classes or names, and fields that do not
 * parse are left out. Records come ordered PTR, SRV, TXT, then addresses, so
 * a single pass sees a service before its host.
 */
function browseRecords(packet: DecodedPacket): BrowseRecord[] {
  if (packet.type !== 'response') return [];
  const out: BrowseRecord[][] = [[], [], [], []];
  const all: Answer[] = [...(packet.answers ?? []), ...(packet.additionals ?? [])];
  for (const a of all) {
    if ((a as { class?: string }).class !== 'IN') continue;
    const rawTtl = (a as { ttl?: unknown }).ttl;
    const ttl = typeof rawTtl === 'number' && rawTtl >= 0 ? rawTtl : 0;
    const flush = (a as { flush?: boolean }).flush === true;
    if (a.type === 'PTR') {
      const label = typeof a.data === 'string' ? instanceLabelOf(a.data) : undefined;
      if (canonicalName(a.name) !== SERVICE_NAME || label === undefined) continue;
      out[0]!.push({ kind: 'ptr', instance: canonicalName(a.data as string), label: displayName(label), ttl });
    } else if (a.type === 'SRV') {
      const d = a.data;
      if (instanceLabelOf(a.name) === undefined || !d || typeof d.target !== 'string' || !Number.isInteger(d.port) || d.port < 1 || d.port > 65535) continue;
      out[1]!.push({ kind: 'srv', instance: canonicalName(a.name), host: canonicalName(d.target), port: d.port, ttl, flush });
    } else if (a.type === 'TXT') {
      if (instanceLabelOf(a.name) === undefined) continue;
      const d = a.data;
      const strings = (Array.isArray(d) ? d : [d]).map((s) => (typeof s === 'string' ? Buffer.from(s) : s));
      out[2]!.push({ kind: 'txt', instance: canonicalName(a.name), strings, ttl, flush });
    } else if (a.type === 'A') {
      if (typeof a.data !== 'string' || !IPV4_RE.test(a.data)) continue;
      out[3]!.push({ kind: 'addr', host: canonicalName(a.name), address: a.data, family: 4, ttl, flush });
    } else if (a.type === 'AAAA') {
      if (typeof a.data !== 'string' || !/^[0-9a-fA-F:.]{2,45}$/.test(a.data)) continue;
      out[3]!.push({ kind: 'addr', host: canonicalName(a.name), address: a.data.toLowerCase(), family: 6, ttl, flush });
    }
  }
  return out.flat();
}

/** A question of a query we send (dns-packet's own type stays out of our declarations). */
export interface QueryQuestion {
  name: string;
  type: 'PTR' | 'SRV' | 'TXT' | 'A' | 'AAAA';
}

/** A known answer for a query (RFC 6762 §7.1): a PTR we hold, with its remaining TTL in seconds. */
export interface KnownAnswer {
  instance: string;
  ttl: number;
}

/** Queries are kept under this size, bytes: known answers that do not fit are left out (they are then answered again, which is only less efficient). */
const MAX_QUERY_BYTES = 1400;

/**
 * A multicast query (QM, id 0, RFC 6762 §18) for `questions`, with known
 * answers for the service PTR (known-answer suppression, §7.1). Known answers
 * past what fits in one packet are left out.
 */
export function encodeQuery(questions: readonly QueryQuestion[], knownAnswers: readonly KnownAnswer[] = []): Buffer {
  const answers: Answer[] = [];
  let size = 12 + questions.reduce((n, q) => n + Buffer.byteLength(q.name) + 6, 0);
  for (const k of knownAnswers) {
    const bytes = Buffer.byteLength(SERVICE_NAME) + Buffer.byteLength(k.instance) + 14;
    if (size + bytes > MAX_QUERY_BYTES) break;
    size += bytes;
    answers.push({ type: 'PTR', name: SERVICE_NAME, class: 'IN', ttl: Math.floor(k.ttl), data: k.instance });
  }
  return encodeDnsPacket({ type: 'query', id: 0, flags: 0, questions: [...questions], answers });
}
