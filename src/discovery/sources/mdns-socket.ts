/**
 * Multicast sockets for mDNS, one per interface and address family, that
 * follow interfaces as they come and go (laptops, VPNs, container bridges)
 * without a restart and without crashing.
 *
 * Traps avoided by construction (DISCOVERY-NOTES.md):
 * - Every socket binds the wildcard address on port 5353 (binding the
 *   interface's unicast address hears no multicast, multicast-dns #53) and
 *   sends from 5353 (RFC 6762 §5.2: a continuous querier's port), with the
 *   interface set for sending (with none, a host without a default route fails
 *   every send with ENETUNREACH, silently in multicast-dns).
 * - Network errors (EADDRNOTAVAIL, EHOSTUNREACH, ENETUNREACH, ENODEV ...) are
 *   expected: counted, reported to `onError`, the socket is dropped and made
 *   again at the next poll. Nothing is thrown to the caller.
 * - Linux delivers a group's packets to every socket bound to the port
 *   (IP_MULTICAST_ALL), so one packet reaches each socket: a packet is handed
 *   on once (deduplicated by sender and content for `DEDUPE_WINDOW_MS`), with
 *   the interface judged from the sender's address.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createHash } from 'node:crypto';
import { arrivalInterface, listInterfaces, SYSTEM_INTERFACES, type InterfaceReader, type LocalInterface } from './mdns-interfaces.js';
import { MAX_MDNS_PACKET_BYTES, MDNS_IPV4_GROUP, MDNS_IPV6_GROUP, MDNS_PORT } from './mdns-wire.js';

/** How often the interface list is read again, ms (a `getifaddrs` call; no process is spawned). */
export const DEFAULT_INTERFACE_POLL_MS = 3000;
/** One packet seen by several sockets within this time is handed on once, ms. */
const DEDUPE_WINDOW_MS = 500;
const MAX_DEDUPE_ENTRIES = 4096;

export interface MdnsSocketsOptions {
  /** Interface names to use; default every up, multicast-capable (or loopback) interface. */
  interfaces?: readonly string[] | undefined;
  /** Use IPv6 where an interface has it. Default true. */
  ipv6?: boolean | undefined;
  /** How often to look for interface changes, ms. Default 3000. */
  interfacePollMs?: number | undefined;
  /** A packet arrived (at most `MAX_MDNS_PACKET_BYTES`), with the interface judged from its sender. */
  onPacket: (bytes: Buffer, from: { address: string; port: number; family: 4 | 6; iface: string | undefined }) => void;
  /** Open no sockets, only follow the interfaces (a node that announces but does not browse). */
  watchOnly?: boolean | undefined;
  /** Interfaces were added (names): a browser queries again. */
  onInterfacesAdded?: ((names: string[]) => void) | undefined;
  /** The set of interface names changed (and at the first reading): the advertiser follows. */
  onInterfacesChanged?: ((names: string[]) => void) | undefined;
  /** An expected network error (never thrown). */
  onError?: ((err: NodeJS.ErrnoException, iface: string) => void) | undefined;
  /** Where interfaces come from (tests). */
  reader?: InterfaceReader | undefined;
}

export interface MdnsSocketStats {
  received: number;
  duplicates: number;
  oversize: number;
  sent: number;
  sendErrors: number;
  socketErrors: number;
}

interface Bound {
  iface: string;
  family: 4 | 6;
  socket: Socket;
  /** Where sends go out: the interface's IPv4 address, or `::%name`. */
  outgoing: string;
  ready: boolean;
  /** The code of the last send error reported: a failing interface is reported once, not at every query. */
  lastError: string | undefined;
}

export class MdnsSockets {
  readonly stats: MdnsSocketStats = { received: 0, duplicates: 0, oversize: 0, sent: 0, sendErrors: 0, socketErrors: 0 };
  private readonly options: MdnsSocketsOptions;
  private readonly bound = new Map<string, Bound>();
  private readonly seen = new Map<string, number>();
  private interfaces: LocalInterface[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private synced = false;

  constructor(options: MdnsSocketsOptions) {
    this.options = options;
  }

  /** The interfaces in use. */
  get current(): readonly LocalInterface[] {
    return this.interfaces;
  }

  /** Open the sockets; safe to call again. Resolves when every socket is bound (or failed, which is reported). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.sync();
    const poll = () => {
      this.timer = setTimeout(() => void this.sync().finally(() => this.running && poll()), this.options.interfacePollMs ?? DEFAULT_INTERFACE_POLL_MS);
      this.timer.unref();
    };
    poll();
  }

  /** Close every socket; safe to call again. */
  close(): void {
    this.running = false;
    clearTimeout(this.timer);
    for (const key of [...this.bound.keys()]) this.drop(key);
    this.seen.clear();
    this.interfaces = [];
    this.synced = false;
  }

  /** Send `bytes` to the mDNS group on every interface (each family its group). Failures are counted and reported, never thrown. */
  send(bytes: Buffer): void {
    for (const b of this.bound.values()) {
      if (!b.ready) continue;
      b.socket.send(bytes, MDNS_PORT, b.family === 4 ? MDNS_IPV4_GROUP : MDNS_IPV6_GROUP, (err) => {
        if (!err) {
          this.stats.sent++;
          b.lastError = undefined;
          return;
        }
        this.stats.sendErrors++;
        const code = (err as NodeJS.ErrnoException).code ?? err.message;
        if (b.lastError !== code) this.options.onError?.(err as NodeJS.ErrnoException, b.iface);
        b.lastError = code;
      });
    }
  }

  /** Read the interfaces again and open or close sockets to match. */
  async sync(): Promise<void> {
    if (!this.running) return;
    let list: LocalInterface[];
    try {
      list = listInterfaces(this.options.interfaces, this.options.reader ?? SYSTEM_INTERFACES);
    } catch (err) {
      this.options.onError?.(err as NodeJS.ErrnoException, '*');
      return;
    }
    const names = list.map((i) => i.name).sort();
    const namesChanged = names.join(' ') !== this.interfaces.map((i) => i.name).sort().join(' ') || !this.synced;
    this.synced = true;
    const wanted = new Map<string, { iface: LocalInterface; family: 4 | 6; outgoing: string }>();
    for (const iface of this.options.watchOnly ? [] : list) {
      if (iface.ipv4.length > 0) wanted.set(`${iface.name}/4/${iface.ipv4[0]}`, { iface, family: 4, outgoing: iface.ipv4[0]! });
      // IPv6 multicast on loopback fails with ENETUNREACH on Linux (no ff00::/8 route on lo); IPv4 covers one host.
      if (this.options.ipv6 !== false && !iface.internal && iface.ipv6.length > 0) wanted.set(`${iface.name}/6`, { iface, family: 6, outgoing: `::%${iface.name}` });
    }
    for (const key of [...this.bound.keys()]) if (!wanted.has(key)) this.drop(key);
    const added = new Set<string>();
    const opening: Promise<void>[] = [];
    for (const [key, w] of wanted) {
      if (this.bound.has(key)) continue;
      added.add(w.iface.name);
      opening.push(this.open(key, w.iface.name, w.family, w.outgoing));
    }
    this.interfaces = list;
    await Promise.all(opening);
    if (!this.running) return;
    if (added.size > 0) this.options.onInterfacesAdded?.([...added]);
    if (namesChanged) this.options.onInterfacesChanged?.(names);
  }

  private open(key: string, iface: string, family: 4 | 6, outgoing: string): Promise<void> {
    const socket = createSocket({ type: family === 4 ? 'udp4' : 'udp6', reuseAddr: true, ...(family === 6 ? { ipv6Only: true } : {}) });
    const b: Bound = { iface, family, socket, outgoing, ready: false, lastError: undefined };
    this.bound.set(key, b);
    return new Promise<void>((resolve) => {
      const fail = (err: NodeJS.ErrnoException) => {
        this.stats.socketErrors++;
        this.options.onError?.(err, iface);
        // Dropped now; the next poll tries again (the interface may be on its way up or down).
        if (this.bound.get(key) === b) this.drop(key);
        resolve();
      };
      socket.on('error', fail);
      socket.on('message', (msg, rinfo) => this.receive(msg, rinfo));
      socket.bind({ port: MDNS_PORT, address: family === 4 ? '0.0.0.0' : '::', exclusive: false }, () => {
        try {
          socket.addMembership(family === 4 ? MDNS_IPV4_GROUP : MDNS_IPV6_GROUP, outgoing);
          socket.setMulticastInterface(outgoing);
          socket.setMulticastTTL(255); // RFC 6762 §11
          socket.setMulticastLoopback(true); // other nodes on this host must hear us
        } catch (err) {
          fail(err as NodeJS.ErrnoException);
          return;
        }
        b.ready = true;
        resolve();
      });
    });
  }

  private drop(key: string): void {
    const b = this.bound.get(key);
    if (!b) return;
    this.bound.delete(key);
    b.ready = false;
    try {
      b.socket.close();
    } catch {
      // already closed
    }
  }

  private receive(msg: Buffer, rinfo: RemoteInfo): void {
    this.stats.received++;
    if (msg.length > MAX_MDNS_PACKET_BYTES) {
      this.stats.oversize++;
      return;
    }
    const now = Date.now();
    const id = `${rinfo.address}|${rinfo.port}|${createHash('sha256').update(msg).digest('base64')}`;
    const last = this.seen.get(id);
    if (last !== undefined && now - last < DEDUPE_WINDOW_MS) {
      this.stats.duplicates++;
      return;
    }
    if (this.seen.size >= MAX_DEDUPE_ENTRIES) {
      for (const [k, t] of this.seen) if (now - t >= DEDUPE_WINDOW_MS) this.seen.delete(k);
      if (this.seen.size >= MAX_DEDUPE_ENTRIES) this.seen.clear();
    }
    this.seen.set(id, now);
    const family = rinfo.family === 'IPv6' ? 6 : 4;
    this.options.onPacket(msg, { address: rinfo.address, port: rinfo.port, family, iface: arrivalInterface(rinfo.address, family, this.interfaces) });
  }
}
