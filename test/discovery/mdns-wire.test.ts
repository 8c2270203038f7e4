/**
 * DNS-SD names, TXT and packets of the mDNS source
 * (src/discovery/sources/mdns-wire.ts): instance names within one DNS label,
 * TXT written and read strictly (every refusal with its reason), responses
 * read into browse records, hostile bytes never throwing, and queries with
 * known answers that stay small.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, encode } from 'dns-packet';
import { NodeIdentity } from '../../src/identity/identity.js';
import {
  readPacket,
  displayName,
  encodeQuery,
  encodeTxt,
  endpointUrl,
  instanceLabelOf,
  instanceNameFor,
  MAX_LABEL_BYTES,
  parseTxt,
  SERVICE_NAME,
  type ServiceTxt,
} from '../../src/discovery/sources/mdns-wire.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const identity = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 9));
const other = NodeIdentity.fromPrivateKey(Buffer.alloc(32, 10));
const txt: ServiceTxt = { nodeId: identity.nodeId, protocolVersions: [1], publicKey: identity.publicKey };
const strings = (pairs: Array<[string, string]>) => pairs.map(([k, v]) => Buffer.from(`${k}=${v}`));

test('instance names: <name>-<12 hex of id>, at most 63 bytes, cut on a character boundary, no dots or controls', () => {
  assert.equal(instanceNameFor('laptop', identity.nodeId), `laptop-${identity.nodeId.slice(0, 12)}`);
  const long = instanceNameFor('é'.repeat(60), identity.nodeId);
  assert.ok(Buffer.byteLength(long) <= MAX_LABEL_BYTES);
  assert.ok(Buffer.from(long).toString('utf8') === long, 'no character cut in half');
  assert.equal(instanceNameFor('a.b\u0000c\u202e', identity.nodeId), `a-b-c--${identity.nodeId.slice(0, 12)}`);
  assert.equal(instanceNameFor('', identity.nodeId), `mcp-e2e-${identity.nodeId.slice(0, 12)}`);
  assert.equal(instanceLabelOf(`x y._mcp-e2e._tcp.local`), 'x y');
  assert.equal(instanceLabelOf(`X._MCP-E2E._tcp.LOCAL.`), 'X');
  assert.equal(instanceLabelOf(`x._other._tcp.local`), undefined);
  assert.equal(instanceLabelOf(`${'a'.repeat(64)}._mcp-e2e._tcp.local`), undefined, 'longer than one label');
});

test('TXT: written txtvers first, read back to the same fields; the key must hash to the id', () => {
  const pairs = encodeTxt({ ...txt, path: '/mcp', scheme: 'wss' });
  assert.deepEqual(pairs.map(([k]) => k), ['txtvers', 'id', 'pv', 'key', 'path', 'sch']);
  assert.ok(pairs.every(([k]) => k.length <= 9), 'keys of at most 9 characters (RFC 6763 §6.4)');
  assert.ok(strings(pairs).reduce((n, s) => n + s.length + 1, 0) <= 200, 'about 200 bytes in all (RFC 6763 §6.2)');
  const back = parseTxt(strings(pairs));
  assert.ok(typeof back !== 'string');
  assert.equal(back.nodeId, identity.nodeId);
  assert.deepEqual(back.protocolVersions, [1]);
  assert.equal(back.path, '/mcp');
  assert.equal(back.scheme, 'wss');
  assert.ok(back.publicKey!.equals(identity.publicKey));
  assert.throws(() => encodeTxt({ ...txt, publicKey: other.publicKey }), RangeError);
  assert.throws(() => encodeTxt({ ...txt, protocolVersions: [2, 1] }), RangeError);
  assert.throws(() => encodeTxt({ ...txt, nodeId: 'AB'.repeat(32) }), RangeError);
});

test('TXT refusals, each with its reason; unknown keys ignored, the first occurrence of a key counts, keys compare case-insensitively', () => {
  const base: Array<[string, string]> = [['txtvers', '1'], ['id', identity.nodeId], ['pv', '1']];
  const with_ = (k: string, v: string) => strings([...base.filter(([x]) => x !== k), [k, v]]);
  assert.equal(parseTxt(strings([['txtvers', '2'], ...base.slice(1)])), 'txt-version');
  assert.equal(parseTxt(strings(base.slice(1))), 'txt-version');
  assert.equal(parseTxt(with_('id', identity.nodeId.toUpperCase())), 'txt-node-id');
  assert.equal(parseTxt(with_('id', identity.nodeId.slice(1))), 'txt-node-id');
  for (const pv of ['', '0', '1,1', '2,1', '1,', '70000', '1,2,3,4,5,6,7,8,9']) assert.equal(parseTxt(with_('pv', pv)), 'txt-versions', pv);
  for (const path of ['mcp', '/a b', '/a?x', '/' + 'a'.repeat(200)]) assert.equal(parseTxt(with_('path', path)), 'txt-path', path);
  assert.equal(parseTxt(with_('key', 'short')), 'txt-key');
  assert.equal(parseTxt(with_('key', other.publicKey.toString('base64url'))), 'txt-id-mismatch', 'a key that is not the id\'s');
  assert.equal(parseTxt(with_('sch', 'http')), 'txt-scheme');
  assert.equal(parseTxt([...strings(base), Buffer.alloc(1300, 0x61)]), 'txt-too-large');
  const ok = parseTxt([...strings([['TXTVERS', '1'], ['ID', identity.nodeId], ['pv', '1']]), Buffer.from('future=x'), Buffer.from('id=' + other.nodeId), Buffer.from('novalue')]);
  assert.ok(typeof ok !== 'string');
  assert.equal(ok.nodeId, identity.nodeId, 'the first id counts');
});

test('displayName escapes what could make a name show as something else, and nothing more', () => {
  assert.equal(displayName('Küche (2)'), 'Küche (2)');
  assert.equal(displayName('a\\b\u0007\u2066'), 'a\\u{5c}b\\u{7}\\u{2066}');
});

test('endpoint URLs follow the record grammar: IPv6 in brackets, no zone', () => {
  assert.equal(endpointUrl('10.0.0.1', 4, 8765, {}), 'ws://10.0.0.1:8765');
  assert.equal(endpointUrl('FD00::1', 6, 8765, { path: '/mcp', scheme: 'wss' }), 'wss://[fd00::1]:8765/mcp');
  assert.equal(endpointUrl('fe80::1%eth0', 6, 8765, {}), undefined);
});

/** A response as a DNS-SD responder sends it: PTR answer, SRV/TXT/A/AAAA additionals. */
function response(instance: string, host: string, port: number, ttl = 120, extra: object[] = []): Buffer {
  const full = `${instance}.${SERVICE_NAME}`;
  return encode({
    type: 'response',
    id: 0,
    flags: 0x8400,
    answers: [{ type: 'PTR', name: SERVICE_NAME, ttl: 4500, data: full }],
    additionals: [
      { type: 'SRV', name: full, ttl, flush: true, data: { port, target: host, priority: 0, weight: 0 } },
      { type: 'TXT', name: full, ttl: 4500, flush: true, data: strings(encodeTxt(txt)) },
      { type: 'A', name: host, ttl, flush: true, data: '10.0.0.7' },
      { type: 'AAAA', name: host, ttl, flush: true, data: 'fd00::7' },
      { type: 'A', name: 'unrelated.local', ttl, data: '10.0.0.8' },
      { type: 'PTR', name: '_other._tcp.local', ttl, data: 'x._other._tcp.local' },
      ...extra,
    ],
  } as Parameters<typeof encode>[0]);
}

test('a response is read into PTR, SRV, TXT, then addresses; other services are left out; names compare in lower case', () => {
  assert.equal(readPacket(Buffer.from('not dns')), undefined);
  const records = readPacket(response('Laptop-abc', 'Host-1.local', 8765))!;
  assert.deepEqual(records.map((r) => r.kind), ['ptr', 'srv', 'txt', 'addr', 'addr', 'addr']);
  const [ptr, srv] = records;
  assert.deepEqual(ptr, { kind: 'ptr', instance: `laptop-abc.${SERVICE_NAME}`, label: 'Laptop-abc', ttl: 4500 });
  assert.deepEqual(srv, { kind: 'srv', instance: `laptop-abc.${SERVICE_NAME}`, host: 'host-1.local', port: 8765, ttl: 120, flush: true });
  assert.deepEqual(readPacket(encodeQuery([{ name: SERVICE_NAME, type: 'PTR' }])), [], 'a query has nothing to browse');
  const [shown] = readPacket(response('evil\u001b[2J\u202egnp.exe', 'h.local', 1))!;
  assert.equal((shown as { label: string }).label, 'evil\\u{1b}[2J\\u{202e}gnp.exe', 'controls and bidi overrides escaped before anyone shows the name');
});

test('hostile bytes: random packets and mutations of a real response never throw, and decoding stops at 9000 bytes', () => {
  const real = response('n', 'h.local', 1);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      readPacket(Buffer.from(bytes));
    }),
    { numRuns: RUNS, seed: 12 },
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(real.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (flips) => {
      const b = Buffer.from(real);
      for (const [i, v] of flips) b[i] = v;
      for (const r of readPacket(b) ?? []) if (r.kind === 'txt') parseTxt(r.strings);
    }),
    { numRuns: RUNS, seed: 13 },
  );
  assert.equal(readPacket(Buffer.concat([real, Buffer.alloc(9001 - real.length)])), undefined);
  // A compression pointer to itself (a loop) is refused by the decoder, not followed.
  const loop = Buffer.from('000084000001000000000000c00c000c0001', 'hex');
  assert.equal(readPacket(loop), undefined);
});

test('queries: QM with known answers, which are left out past ~1400 bytes', () => {
  const known = Array.from({ length: 200 }, (_, i) => ({ instance: `node-${i}.${SERVICE_NAME}`, ttl: 4000 }));
  const q = encodeQuery([{ name: SERVICE_NAME, type: 'PTR' }], known);
  assert.ok(q.length <= 1400, `${q.length} bytes`);
  const p = decode(q);
  assert.equal(p.type, 'query');
  assert.ok((p.answers ?? []).length > 10 && (p.answers ?? []).length < 200);
  assert.equal((p.answers![0] as { ttl: number }).ttl, 4000);
});

test('TXT vectors (test/vectors/mdns-txt.json): every accepted case reads to its fields, every refused one to its reason, ids re-derived with node:crypto', async () => {
  const { readFileSync } = await import('node:fs');
  const { createHash } = await import('node:crypto');
  const v = JSON.parse(readFileSync(new URL('../../../test/vectors/mdns-txt.json', import.meta.url), 'utf8'));
  const seeded = NodeIdentity.fromPrivateKey(Buffer.from(v.identity_seed, 'hex'));
  assert.equal(seeded.publicKey.toString('hex'), v.identity_key);
  assert.equal(createHash('sha256').update(Buffer.from(v.identity_key, 'hex')).digest('hex'), v.node_id);
  assert.equal(instanceNameFor(v.instance_name.name, v.node_id), v.instance_name.instance);
  const everything = v.accepted.find((c: { name: string }) => c.name === 'everything');
  assert.deepEqual(
    encodeTxt({ nodeId: v.node_id, protocolVersions: [1], publicKey: seeded.publicKey, path: '/mcp', scheme: 'wss' }).map(([k, x]) => `${k}=${x}`),
    everything.strings,
    'the implementation writes the vector byte for byte',
  );
  for (const c of v.accepted) {
    const got = parseTxt(c.strings.map((s: string) => Buffer.from(s, 'latin1')));
    assert.ok(typeof got !== 'string', `${c.name}: refused with ${got}`);
    assert.equal(got.nodeId, c.node_id, c.name);
    assert.deepEqual(got.protocolVersions, c.protocol_versions, c.name);
    assert.equal(got.publicKey?.toString('hex'), c.key, c.name);
    assert.equal(got.path, c.path, c.name);
    assert.equal(got.scheme, c.scheme, c.name);
  }
  assert.ok(v.refused.length >= 10);
  for (const c of v.refused) assert.equal(parseTxt(c.strings.map((s: string) => Buffer.from(s, 'latin1'))), c.reason, c.name);
});
