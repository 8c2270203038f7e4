/**
 * Every tampering is caught. A relay between a real client transport and a
 * real server (McpServer behind EncryptedWebSocketServer) alters one thing
 * per connection:
 *
 * - each field of each handshake message, value by value: first, middle and
 *   last byte of every hex field with bits 0, 3 and 7 flipped; the type text;
 *   version and step numbers; the offer and the selection;
 * - each field of a session frame in both framings, signed and unsigned, in
 *   both directions: binary type, flags, epoch, counter, signature,
 *   ciphertext, tag; JSON type, epoch, nonce, ciphertext, tag, signature,
 *   sender (same position and bit classes);
 * - the stream: replayed, reordered, dropped, duplicated, truncated frames,
 *   injected plaintext (text and binary), frames and handshake messages
 *   replayed from another session, frames reflected back to their sender,
 *   handshake messages replayed into the session.
 *
 * For each case: the connection ends; the server reports a stable error
 * code from the set expected for that field (and the client learns the same
 * code); the server's MCP layer saw exactly the messages before the tampered
 * frame and nothing from it on (none at all when the handshake was touched:
 * no session even starts); the client's MCP layer likewise; no error message
 * or close reason carries a private key or the plaintext marker.
 *
 * The count is printed:
 *   node --test dist/test/adversarial/tamper.test.js | grep 'tamper cases'
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { inspect } from 'node:util';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import {
  EncryptedWebSocketClientTransport,
  EncryptedWebSocketServer,
  ERROR_CODES,
  McpE2eError,
  NodeIdentity,
  type EncryptedWebSocketServerTransport,
  type ErrorCode,
  type Framing,
} from '../../src/index.js';
import { ONE_ADDRESS_MANY_CLIENTS, codeOf, deferred, makeMcpServer, within } from '../transport/helpers.js';
import { startRelay, textFrame, type Frame, type Relay } from '../transport/relay.js';
import { assertClean } from './scan.js';

const CLIENT_SEED = Buffer.alloc(32, 0xc1);
const SERVER_SEED = Buffer.alloc(32, 0x5e);
const clientIdentity = NodeIdentity.fromPrivateKey(CLIENT_SEED);
const serverIdentity = NodeIdentity.fromPrivateKey(SERVER_SEED);
const MARKER = 'PLAINTEXT-MARKER-7a3e';
/** Requests the client sends in one burst after the handshake; the server answers each. */
const BURST = 4;
/** The tampered session frame in the burst (earlier ones are genuine and must get through). */
const K = 1;
/** Frames before the session, per direction: client→server step 1, step 3; server→client step 2. */
const HS_UP = 2;
const HS_DOWN = 1;
const CONCURRENCY = 4;

type Direction = 'up' | 'down';
interface Config {
  framing: Framing;
  signed: boolean;
  /** What the client offers, when not just `framing`. */
  offer?: Framing[];
}
interface Case {
  group: string;
  name: string;
  config: Config;
  up?: (f: Frame, i: number) => Frame[];
  down?: (f: Frame, i: number) => Frame[];
  /** Codes the server may report for this tampering. */
  codes: ErrorCode[];
  /** The handshake was tampered with: no session may start on the server. */
  handshake?: boolean;
  /** Messages the server's MCP layer must have seen (session tampering). */
  serverSeen?: number;
  /** Messages the client's MCP layer must have seen, exactly; or at most, with `clientSeenAtMost`. */
  clientSeen?: number;
  clientSeenAtMost?: number;
}

// ----------------------------------------------------------------- server side

interface ServerConn {
  transport: EncryptedWebSocketServerTransport;
  seen: JSONRPCMessage[];
}
let server: EncryptedWebSocketServer;
let relay: Relay;
let serverUrl: string;
/** Per case (by relay URL query), what the server did. */
const byCase = new Map<string, { conns: ServerConn[]; errors: Error[]; wake: () => void }>();
/** The relay's upstream local port (the server's remote port) → case id. */
const caseOfPort = new Map<number, string>();
/** Cases refused as expected (every check of runCase passed), by group. */
const counts: Record<string, number> = {};
/** Cases started, counted before anything is checked: refusals are counted apart from it. */
let casesStarted = 0;
const codeHistogram: Record<string, number> = {};

function caseState(id: string) {
  let s = byCase.get(id);
  if (!s) {
    s = { conns: [], errors: [], wake: () => {} };
    byCase.set(id, s);
  }
  return s;
}

/** Recorded frames of a genuine earlier session, per configuration, for cross-session replays. */
const recorded = new Map<string, { up: Frame[]; down: Frame[] }>();
const configKey = (c: Config) => `${c.framing}/${c.signed ? 'signed' : 'unsigned'}`;
const CONFIGS: Config[] = [
  { framing: 'binary', signed: true },
  { framing: 'binary', signed: false },
  { framing: 'json', signed: true },
  { framing: 'json', signed: false },
];

/** Cases running, by id (the client connects to the relay with `?case=id`). */
const active = new Map<string, Case>();

before(async () => {
  server = new EncryptedWebSocketServer({
    identity: serverIdentity,
    allowedPeers: [clientIdentity.nodeId],
    // Every case is a connection of the same client through the relay's one address.
    limits: { ...ONE_ADDRESS_MANY_CLIENTS, maxConnectionsPerPeer: 2 ** 24 },
    onConnection: async (t) => {
      const state = caseState(caseOfPort.get(portOf(t)) ?? 'unknown');
      const conn: ServerConn = { transport: t, seen: [] };
      state.conns.push(conn);
      t.onmessage = (m) => conn.seen.push(m); // chained by McpServer.connect
      t.onerror = (e) => {
        state.errors.push(e);
        state.wake();
      };
      await makeMcpServer().connect(t);
    },
    onError: (e, info) => {
      const state = caseState(caseOfPort.get(info.remotePort ?? -1) ?? 'unknown');
      state.errors.push(e);
      state.wake();
    },
  });
  const addr = await server.listen(0, '127.0.0.1');
  serverUrl = `ws://127.0.0.1:${addr.port}/mcp`;
  relay = await startRelay({
    upstream: serverUrl,
    onUpstreamOpen: (req, upstream) => {
      const port = (upstream as unknown as { _socket: { localPort: number } })._socket.localPort;
      caseOfPort.set(port, caseIdOf(req));
    },
    toServer: (f, i, req) => {
      const c = active.get(caseIdOf(req));
      return c?.up ? c.up(f, i) : [f];
    },
    toClient: (f, i, req) => {
      const c = active.get(caseIdOf(req));
      return c?.down ? c.down(f, i) : [f];
    },
  });
  // One genuine session per configuration, recorded for cross-session replays.
  for (const config of CONFIGS) {
    const rec = { up: [] as Frame[], down: [] as Frame[] };
    recorded.set(configKey(config), rec);
    await runCase({
      group: 'control',
      name: `genuine ${configKey(config)}`,
      config,
      up: (f) => (rec.up.push(f), [f]),
      down: (f) => (rec.down.push(f), [f]),
      codes: [],
    });
  }
});

after(async () => {
  await relay.close();
  await server.close();
});

function caseIdOf(req: IncomingMessage): string {
  return new URL(req.url ?? '/', 'http://x').searchParams.get('case') ?? '';
}
function portOf(t: EncryptedWebSocketServerTransport): number {
  return (t.socket as unknown as { _socket?: { remotePort?: number } })._socket?.remotePort ?? -1;
}


// -------------------------------------------------------------- client side

let nextCase = 0;

async function runCase(c: Case): Promise<string | undefined> {
  const id = `c${nextCase++}`;
  if (c.codes.length > 0) casesStarted++;
  active.set(id, c);
  const state = caseState(id);
  const t = new EncryptedWebSocketClientTransport(`${relay.url}?case=${id}`, {
    identity: clientIdentity,
    expectedPeer: serverIdentity.nodeId,
    framings: c.config.offer ?? [c.config.framing],
    signatures: c.config.signed,
  });
  const clientErrors: Error[] = [];
  const clientSeen: JSONRPCMessage[] = [];
  const closed = deferred();
  t.onerror = (e) => clientErrors.push(e);
  t.onmessage = (m) => clientSeen.push(m);
  t.onclose = () => closed.resolve();
  const started = await t.start().then(
    () => true,
    () => false,
  );
  if (started) {
    for (let k = 0; k < BURST; k++) t.send({ jsonrpc: '2.0', id: k, method: 'ping', params: { _meta: { marker: MARKER } } }).catch(() => {});
  }
  if (c.codes.length === 0) {
    // Genuine run: wait for every answer, then close.
    while (clientSeen.length < BURST && !t.closed) await within(new Promise<void>((resolve) => setTimeout(resolve, 2)), 1000, 'answers');
    await t.close();
    active.delete(id);
    return undefined;
  }
  await within(closed.promise, 10_000, `${c.name}: the connection to end`);
  // The server's report may trail the client's close by a moment.
  const deadline = Date.now() + 5000;
  while (state.errors.length === 0 && Date.now() < deadline) {
    await within(new Promise<void>((resolve) => (state.wake = resolve)), 5000, `${c.name}: the server's report`).catch(() => {});
  }
  active.delete(id);
  const label = `${c.group} / ${c.name}`;
  assert.ok(state.errors.length > 0, `${label}: the server reported nothing`);
  const first = state.errors[0]!;
  assert.ok(first instanceof McpE2eError && ERROR_CODES.includes(first.code), `${label}: not a stable error: ${inspect(first)}`);
  assert.ok(c.codes.includes(first.code), `${label}: server reported ${first.code}, expected one of ${c.codes.join(', ')}`);
  assert.ok(
    clientErrors.some((e) => codeOf(e) === first.code),
    `${label}: the client learned ${clientErrors.map(codeOf).join(', ') || 'nothing'}, the server ${first.code}`,
  );
  // The MCP layers.
  const conns = state.conns;
  if (c.handshake) {
    assert.equal(conns.length, 0, `${label}: a session started on the server despite a tampered handshake`);
  } else {
    assert.equal(conns.length, 1, `${label}: ${conns.length} server sessions`);
    const seen = conns[0]!.seen.map((m) => (m as { id?: unknown }).id);
    assert.deepEqual(seen, Array.from({ length: c.serverSeen! }, (_, i) => i), `${label}: the server's MCP layer saw ${JSON.stringify(seen)}`);
  }
  const answers = clientSeen.map((m) => (m as { id?: unknown }).id);
  if (c.clientSeen !== undefined) assert.deepEqual(answers, Array.from({ length: c.clientSeen }, (_, i) => i), `${label}: the client saw ${JSON.stringify(answers)}`);
  if (c.clientSeenAtMost !== undefined) {
    assert.ok(answers.length <= c.clientSeenAtMost && answers.every((a, i) => a === i), `${label}: the client saw ${JSON.stringify(answers)}`);
  }
  // Secrets: nothing reported on either side carries a private key or the plaintext.
  const texts = [...state.errors, ...clientErrors].map((e) => [e.message, String(e.stack), inspect(e, { depth: 4 })].join('\n')).join('\n');
  assertClean(texts, { clientKey: CLIENT_SEED, serverKey: SERVER_SEED, marker: MARKER });
  counts[c.group] = (counts[c.group] ?? 0) + 1;
  codeHistogram[first.code] = (codeHistogram[first.code] ?? 0) + 1;
  return first.code;
}

// ----------------------------------------------------------------- mutations

const BITS = [0, 3, 7];
/** First, middle and last index of a field of `n` units, without repeats. */
const positions = (n: number) => [...new Set([0, Math.floor(n / 2), n - 1])];
const flipByte = (b: Buffer, i: number, bit: number) => {
  const c = Buffer.from(b);
  c[i] = c[i]! ^ (1 << bit);
  return c;
};
const asBuffer = (f: Frame) => f.data;
const withData = (f: Frame, data: Buffer): Frame => ({ data, isBinary: f.isBinary });

/** Apply `edit` to the JSON document of a text frame. */
function editDoc(f: Frame, edit: (doc: Record<string, unknown>) => void): Frame {
  const doc = JSON.parse(f.data.toString('utf8')) as Record<string, unknown>;
  edit(doc);
  return textFrame(JSON.stringify(doc));
}
/** Flip a bit of byte `i` of the hex field at `path` (value level: the result is valid hex). */
function flipHexField(path: string[], i: number, bit: number) {
  return (f: Frame) =>
    editDoc(f, (doc) => {
      let o = doc as Record<string, unknown>;
      for (const p of path.slice(0, -1)) o = o[p] as Record<string, unknown>;
      const key = path.at(-1)!;
      o[key] = flipByte(Buffer.from(o[key] as string, 'hex'), i, bit).toString('hex');
    });
}
/** Flip a bit of the raw text of a string value (may leave ASCII: then the text frame is not UTF-8). */
function flipTextOfValue(key: string, i: number, bit: number) {
  return (f: Frame) => {
    const text = f.data.toString('utf8');
    const at = text.indexOf(`"${key}":"`) + key.length + 4 + i;
    return withData(f, flipByte(f.data, at, bit));
  };
}
function setValue(path: string[], value: (old: unknown) => unknown) {
  return (f: Frame) =>
    editDoc(f, (doc) => {
      let o = doc as Record<string, unknown>;
      for (const p of path.slice(0, -1)) o = o[p] as Record<string, unknown>;
      o[path.at(-1)!] = value(o[path.at(-1)!]);
    });
}
/** Apply `mutate` to frame number `at` of the direction, pass the rest. */
const at = (index: number, mutate: (f: Frame) => Frame[] | Frame) => (f: Frame, i: number) => {
  if (i !== index) return [f];
  const out = mutate(f);
  return Array.isArray(out) ? out : [out];
};

// ----------------------------------------------------------------- the cases

/** Both framings offered, so that the offer can be reordered or narrowed. */
const HS_CONFIG: Config = { framing: 'binary', signed: true, offer: ['binary', 'json'] };
const HANDSHAKE_CODES: ErrorCode[] = [
  'ERR_HANDSHAKE_MALFORMED',
  'ERR_HANDSHAKE_UNEXPECTED_MESSAGE',
  'ERR_HANDSHAKE_UNSUPPORTED_VERSION',
  'ERR_HANDSHAKE_BAD_KEY',
  'ERR_HANDSHAKE_LOW_ORDER_KEY',
  'ERR_HANDSHAKE_NODE_ID_MISMATCH',
  'ERR_HANDSHAKE_BAD_SIGNATURE',
  'ERR_HANDSHAKE_BAD_MAC',
  'ERR_HANDSHAKE_OPTIONS',
  'ERR_HANDSHAKE_REFLECTION',
  'ERR_INVALID_MESSAGE', // a flipped top bit leaves UTF-8: ws refuses the text frame (1007)
  'ERR_PEER_KEY_CHANGED', // a server identity or node id swapped by the relay: refused by the pin
];

function handshakeCases(): Case[] {
  const cases: Case[] = [];
  const steps: Array<{ step: number; dir: Direction; index: number; hex: Array<[string[], number]>; extra: Array<[string, (f: Frame) => Frame]> }> = [
    {
      step: 1,
      dir: 'up',
      index: 0,
      hex: [[['public_key'], 32], [['random'], 32]],
      extra: [
        ['options.signatures negated', setValue(['options', 'signatures'], (v) => !v)],
        ['options.framings reordered', setValue(['options', 'framings'], (v) => [...(v as string[])].reverse())],
        ['options.framings narrowed', setValue(['options', 'framings'], (v) => (v as string[]).slice(0, 1))],
        ['options.framings unknown', setValue(['options', 'framings'], () => ['carrier-pigeon'])],
      ],
    },
    {
      step: 2,
      dir: 'down',
      index: 0,
      hex: [[['public_key'], 32], [['random'], 32], [['identity_key'], 32], [['node_id'], 32], [['signature'], 64], [['mac'], 32]],
      extra: [
        ['options.signatures negated', setValue(['options', 'signatures'], (v) => !v)],
        ['options.framing changed', setValue(['options', 'framing'], (v) => (v === 'json' ? 'binary' : 'json'))],
        ['options.framing unknown', setValue(['options', 'framing'], () => 'smoke-signals')],
      ],
    },
    {
      step: 3,
      dir: 'up',
      index: 1,
      hex: [[['identity_key'], 32], [['node_id'], 32], [['signature'], 64], [['mac'], 32]],
      extra: [],
    },
  ];
  for (const s of steps) {
    const add = (name: string, mutate: (f: Frame) => Frame) =>
      cases.push({
        group: `handshake step ${s.step}`,
        name,
        config: HS_CONFIG,
        [s.dir]: at(s.index, mutate),
        codes: HANDSHAKE_CODES,
        handshake: true,
      });
    for (const [path, n] of s.hex) for (const i of positions(n)) for (const bit of BITS) add(`${path.join('.')} byte ${i} bit ${bit}`, flipHexField(path, i, bit));
    for (const i of positions('key_exchange'.length)) for (const bit of BITS) add(`type char ${i} bit ${bit}`, flipTextOfValue('type', i, bit));
    for (const bit of [0, 1, 3]) add(`version bit ${bit}`, setValue(['version'], (v) => (v as number) ^ (1 << bit)));
    for (const bit of [0, 1, 3]) add(`step bit ${bit}`, setValue(['step'], (v) => (v as number) ^ (1 << bit)));
    for (const [name, mutate] of s.extra) add(name, mutate);
    // From a genuine earlier session.
    add('replaced by the same step of another session', () => {
      const rec = recorded.get(configKey(HS_CONFIG))!;
      return s.dir === 'up' ? rec.up[s.index]! : rec.down[s.index]!;
    });
  }
  // The offer and selection are allowed to differ in one way only (the server may add signatures): check both configs.
  cases.push({
    group: 'handshake step 1',
    name: 'signatures stripped from the offer of a signing client',
    config: { framing: 'json', signed: true },
    up: at(0, setValue(['options', 'signatures'], () => false)),
    codes: ['ERR_HANDSHAKE_OPTIONS'],
    handshake: true,
  });
  return cases;
}

function binaryFields(signed: boolean, length: number): Array<[string, number, number]> {
  const sigEnd = signed ? 78 : 14;
  const fields: Array<[string, number, number]> = [
    ['type', 0, 1],
    ['flags', 1, 2],
    ['epoch', 2, 6],
    ['counter', 6, 14],
  ];
  if (signed) fields.push(['signature', 14, 78]);
  fields.push(['ciphertext', sigEnd, length - 16], ['tag', length - 16, length]);
  return fields;
}

const FIELD_CODES: Record<string, ErrorCode[]> = {
  type: ['ERR_FRAME_MALFORMED', 'ERR_INVALID_MESSAGE'],
  // The signed flag: a signed frame read as unsigned (or the reverse); other bits are reserved.
  flags: ['ERR_FRAME_MALFORMED', 'ERR_FRAME_SIGNATURE'],
  // Epoch + 1 is legal and selects the next key: the tag then fails.
  epoch: ['ERR_FRAME_EPOCH', 'ERR_FRAME_DECRYPT'],
  // Above 2^53 − 1 the counter is malformed; a zero nonce prefix is required.
  counter: ['ERR_FRAME_COUNTER', 'ERR_FRAME_MALFORMED'],
  nonce: ['ERR_FRAME_COUNTER', 'ERR_FRAME_MALFORMED'],
  signature: ['ERR_FRAME_SIGNATURE'],
  ciphertext: ['ERR_FRAME_DECRYPT'],
  tag: ['ERR_FRAME_DECRYPT'],
  sender: ['ERR_FRAME_SENDER'],
};

/** Session-frame field cases, both directions. */
function frameCases(config: Config): Case[] {
  const cases: Case[] = [];
  for (const dir of ['up', 'down'] as Direction[]) {
    const index = (dir === 'up' ? HS_UP : HS_DOWN) + K;
    const seen = dir === 'up' ? { serverSeen: K, clientSeenAtMost: K } : { serverSeen: BURST, clientSeen: K };
    const add = (field: string, name: string, mutate: (f: Frame) => Frame) =>
      cases.push({ group: `${configKey(config)} frame field ${dir === 'up' ? '→server' : '→client'}`, name: `${field} ${name}`, config, [dir]: at(index, mutate), codes: FIELD_CODES[field]!, ...seen });
    if (config.framing === 'binary') {
      // The frame length differs per message; fields are located in the frame at hand.
      const sample = binaryFields(config.signed, 200);
      for (const [field, start, end] of sample) {
        for (const p of positions(end - start)) {
          for (const bit of field === 'type' || field === 'flags' ? [0, 1, 7] : BITS) {
            add(field, `byte ${p} bit ${bit}`, (f) => {
              const [, s, e] = binaryFields(config.signed, f.data.length).find(([n]) => n === field)!;
              const i = Math.min(s + p, e - 1);
              return withData(f, flipByte(asBuffer(f), i, bit));
            });
          }
        }
      }
    } else {
      for (const [field, bytes] of [['nonce', 12], ['ciphertext', 18], ['sender', 32], ...(config.signed ? [['signature', 64]] : [])] as Array<[string, number]>) {
        for (const p of positions(bytes)) {
          for (const bit of BITS) {
            add(field, `byte ${p} bit ${bit}`, (f) =>
              editDoc(f, (doc) => {
                const b = Buffer.from(doc[field] as string, 'hex');
                // ciphertext: positions within the ciphertext part, before the tag.
                const i = field === 'ciphertext' ? Math.min(p, b.length - 17) : Math.min(p, b.length - 1);
                doc[field] = flipByte(b, i, bit).toString('hex');
              }),
            );
          }
        }
      }
      for (const p of positions(16)) {
        for (const bit of BITS) {
          add('tag', `byte ${p} bit ${bit}`, (f) =>
            editDoc(f, (doc) => {
              const b = Buffer.from(doc.ciphertext as string, 'hex');
              doc.ciphertext = flipByte(b, b.length - 16 + p, bit).toString('hex');
            }),
          );
        }
      }
      for (const bit of [0, 3, 7, 31]) add('epoch', `bit ${bit}`, setValue(['epoch'], (v) => ((v as number) ^ 2 ** bit) >>> 0));
      for (const i of positions('encrypted'.length)) for (const bit of BITS) add('type', `char ${i} bit ${bit}`, flipTextOfValue('type', i, bit));
    }
  }
  return cases;
}

/** Replays, reorders, drops, duplicates, truncations and injections, both directions. */
function streamCases(config: Config): Case[] {
  const cases: Case[] = [];
  const rec = () => recorded.get(configKey(config))!;
  const plaintext = textFrame(JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/list' }));
  const plaintextBinary: Frame = { data: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 98, method: 'tools/list' })), isBinary: true };
  for (const dir of ['up', 'down'] as Direction[]) {
    const base = dir === 'up' ? HS_UP : HS_DOWN;
    const kIndex = base + K;
    let held: Frame | undefined;
    let previous: Frame | undefined;
    const group = `${configKey(config)} stream ${dir === 'up' ? '→server' : '→client'}`;
    // n = how many genuine messages reach the receiving side's MCP layer.
    const add = (name: string, hook: (f: Frame, i: number) => Frame[], codes: ErrorCode[], n: number) =>
      cases.push({
        group,
        name,
        config,
        [dir]: (f: Frame, i: number) => {
          const out = hook(f, i);
          if (i === kIndex - 1) previous = f;
          return out;
        },
        codes,
        ...(dir === 'up' ? { serverSeen: n, clientSeenAtMost: n } : { serverSeen: BURST, clientSeen: n }),
      });
    add('replay of the previous frame after this one', (f, i) => (i === kIndex ? [f, previous!] : [f]), ['ERR_FRAME_COUNTER'], K + 1);
    add('duplicate', (f, i) => (i === kIndex ? [f, f] : [f]), ['ERR_FRAME_COUNTER'], K + 1);
    add('reorder (swap with the next)', (f, i) => {
      if (i === kIndex) {
        held = f;
        return [];
      }
      if (i === kIndex + 1) return [f, held!];
      return [f];
    }, ['ERR_FRAME_COUNTER'], K);
    add('drop', (f, i) => (i === kIndex ? [] : [f]), ['ERR_FRAME_COUNTER'], K);
    for (const [name, cut] of [['to 1 byte', (n: number) => 1], ['to the header', () => 14], ['to half', (n: number) => Math.floor(n / 2)], ['by its last byte', (n: number) => n - 1]] as Array<[string, (n: number) => number]>) {
      add(`truncate ${name}`, (f, i) => (i === kIndex ? [withData(f, f.data.subarray(0, cut(f.data.length)))] : [f]), ['ERR_FRAME_MALFORMED', 'ERR_FRAME_DECRYPT', 'ERR_INVALID_MESSAGE'], K);
    }
    add('inject a plaintext JSON-RPC text frame', (f, i) => (i === kIndex ? [plaintext, f] : [f]), ['ERR_FRAME_MALFORMED'], K);
    add('inject a plaintext JSON-RPC binary frame', (f, i) => (i === kIndex ? [plaintextBinary, f] : [f]), ['ERR_FRAME_MALFORMED'], K);
    add('replace by the same frame of another session', (f, i) => (i === kIndex ? [(dir === 'up' ? rec().up : rec().down)[kIndex]!] : [f]), ['ERR_FRAME_DECRYPT'], K);
    add('inject a handshake message (step 1 of another session) into the session', (f, i) => (i === kIndex ? [(dir === 'up' ? rec().up : rec().down)[0]!, f] : [f]), ['ERR_FRAME_MALFORMED'], K);
  }
  // Reflection: a frame sent back to its own sender (wrong direction key; in JSON the sender is not the peer).
  let captured: Frame | undefined;
  cases.push({
    group: `${configKey(config)} stream →client`,
    name: 'reflect a client frame back to the client',
    config,
    up: (f, i) => {
      if (i === HS_UP + K) captured = f;
      return [f];
    },
    down: (f, i) => (i === HS_DOWN + K && captured ? [captured] : [f]),
    codes: config.framing === 'json' ? ['ERR_FRAME_SENDER'] : ['ERR_FRAME_DECRYPT'],
    serverSeen: BURST,
    clientSeen: K,
  });
  return cases;
}

/** Run cases `CONCURRENCY` at a time (each its own connection, told apart by the relay's upstream port). */
async function runAll(cases: Case[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < cases.length) await runCase(cases[next++]!);
    }),
  );
}

test('tampered handshake messages: every field, every position class, replayed from another session', async () => {
  await runAll(handshakeCases());
});

for (const config of CONFIGS) {
  test(`tampered session frames (${configKey(config)}): every field, both directions, and the stream`, async () => {
    await runAll([...frameCases(config), ...streamCases(config)]);
  });
}

test('tamper case count', () => {
  const refused = Object.values(counts).reduce((a, b) => a + b, 0);
  const total = casesStarted;
  process.stdout.write(`# tamper cases: ${refused} refused of ${total}, none reached the MCP layer\n`);
  process.stdout.write(`# tamper cases by group: ${JSON.stringify(counts)}\n`);
  process.stdout.write(`# tamper cases by detected code: ${JSON.stringify(codeHistogram)}\n`);
  assert.ok(total >= 500, `only ${total} cases ran`);
  assert.equal(refused, total, 'every tampered case was refused');
});
