/**
 * The local interfaces mDNS runs on, and which network an address belongs
 * to. mDNS is link-local (RFC 6762 §1): a browser only dials an address that
 * lies on the network of the interface the announcement came in on (the
 * browser's side of §6.2), so a responder that advertises a container
 * bridge's or a VPN's address on the LAN (bonjour-service does: every address
 * of every interface) never makes us dial into the wrong network.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { readFileSync } from 'node:fs';

/** One interface as mDNS uses it. */
export interface LocalInterface {
  name: string;
  /** Loopback. */
  internal: boolean;
  ipv4: string[];
  /** IPv6 addresses without zone (link-local ones included: they carry multicast). */
  ipv6: string[];
  /** The networks of its addresses, for `networkOf`. */
  networks: BlockList;
}

/**
 * The interfaces that carry IPv4 and IPv6 multicast now, from the kernel's
 * group memberships of this process's network namespace (`/proc/self/net/igmp`
 * and `igmp6`: every up, multicast-capable interface is in the all-hosts
 * group). Not `/sys/class/net`: that shows the namespace sysfs was mounted in,
 * which inside a container or `nsenter` is another one. Undefined where the
 * files cannot be read (other systems): every interface is then tried, and
 * one that cannot send is reported once.
 */
function linuxMulticast(): { v4: Set<string> | undefined; v6: Set<string> | undefined } {
  const read = (file: string, pick: (fields: string[]) => string | undefined): Set<string> | undefined => {
    try {
      const names = new Set<string>();
      for (const line of readFileSync(file, 'ascii').split('\n')) {
        const name = pick(line.trim().split(/\s+/));
        if (name) names.add(name);
      }
      return names;
    } catch {
      return undefined;
    }
  };
  return {
    // "1	lo        :     1      V3" (index, name, colon ...); group lines start with a tab.
    v4: read('/proc/self/net/igmp', (f) => (f.length >= 3 && /^\d+$/.test(f[0]!) && f[2] === ':' ? f[1] : undefined)),
    // "1    lo              ff020000000000000000000000000001     1 0000000C 0"
    v6: read('/proc/self/net/igmp6', (f) => (f.length >= 3 && /^\d+$/.test(f[0]!) ? f[1] : undefined)),
  };
}

function prefixOf(info: NetworkInterfaceInfo): number {
  const m = /\/(\d+)$/.exec(info.cidr ?? '');
  return m ? Number(m[1]) : info.family === 'IPv4' ? 32 : 128;
}

/** Where interface data comes from (tests replace it). */
export interface InterfaceReader {
  /** Addresses of the interfaces that are up and running (what `os.networkInterfaces` lists). */
  addresses: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
  /** Names of the interfaces that carry multicast per family; undefined when unknown. */
  multicast: () => { v4: Set<string> | undefined; v6: Set<string> | undefined };
}

export const SYSTEM_INTERFACES: InterfaceReader = { addresses: networkInterfaces, multicast: linuxMulticast };

/**
 * The interfaces mDNS can use now: up (libuv lists only those), with an
 * address of a family whose multicast the interface carries (loopback too:
 * it carries multicast inside one host, so nodes on one machine find each
 * other). `only` restricts to those names.
 */
export function listInterfaces(only?: readonly string[], reader: InterfaceReader = SYSTEM_INTERFACES): LocalInterface[] {
  const out: LocalInterface[] = [];
  const multicast = reader.multicast();
  for (const [name, all] of Object.entries(reader.addresses())) {
    if (only && !only.includes(name)) continue;
    const infos = (all ?? []).filter((i) => {
      const set = i.family === 'IPv4' ? multicast.v4 : multicast.v6;
      return set === undefined || set.has(name) || i.internal;
    });
    if (infos.length === 0) continue;
    const networks = new BlockList();
    const ipv4: string[] = [];
    const ipv6: string[] = [];
    for (const info of infos) {
      if (info.family === 'IPv4' && isIPv4(info.address)) {
        ipv4.push(info.address);
        networks.addSubnet(info.address, prefixOf(info), 'ipv4');
      } else if (info.family === 'IPv6' && isIPv6(info.address.replace(/%.*$/, ''))) {
        const address = info.address.replace(/%.*$/, '').toLowerCase();
        ipv6.push(address);
        networks.addSubnet(address, prefixOf(info), 'ipv6');
      }
    }
    out.push({ name, internal: infos.some((i) => i.internal), ipv4, ipv6, networks });
  }
  return out;
}

const isLinkLocalV6 = (address: string) => /^fe[89ab][0-9a-f]:/i.test(address);
const isLoopback = (address: string, family: 4 | 6) => (family === 4 ? address.startsWith('127.') : address === '::1');

/** An arrival on one of our links, but which one cannot be told (a link-local IPv6 sender with several IPv6 interfaces). */
export const SOME_LINK = '*';

/**
 * The interface a packet from `source` came in on, judged by the sender's
 * address (Node does not expose IP_PKTINFO): the interface whose network holds
 * it; for a link-local IPv6 sender, the only non-loopback IPv6 interface, or
 * `SOME_LINK` when there are several; undefined for a sender on none of our
 * networks.
 */
export function arrivalInterface(source: string, family: 4 | 6, interfaces: readonly LocalInterface[]): string | undefined {
  const address = source.replace(/%.*$/, '').toLowerCase();
  if (family === 6 && isLinkLocalV6(address)) {
    const v6 = interfaces.filter((i) => !i.internal && i.ipv6.length > 0);
    return v6.length === 1 ? v6[0]!.name : v6.length > 1 ? SOME_LINK : undefined;
  }
  return networkOf(address, family, interfaces)?.name;
}

/** The interface whose network holds `address` (loopback addresses: the loopback interface), or undefined. */
export function networkOf(address: string, family: 4 | 6, interfaces: readonly LocalInterface[]): LocalInterface | undefined {
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (isLoopback(address, family)) return interfaces.find((i) => i.internal);
  // Link-local IPv6 is on every interface's fe80::/64: without the zone it names none of them in particular.
  if (family === 6 && isLinkLocalV6(address)) return undefined;
  return interfaces.find((i) => !i.internal && i.networks.check(address, type));
}

/**
 * Whether a browser may dial `address`, announced in a packet that arrived
 * from the network of `arrivalIface`: the address must lie on that same
 * network (loopback addresses only from loopback). Link-local IPv6 cannot be
 * dialled by URL (no zone in the record grammar). `allowOffLink` lifts the
 * same-network rule (a routed address announced on purpose).
 */
export function isDialableFrom(address: string, family: 4 | 6, arrivalIface: string | undefined, interfaces: readonly LocalInterface[], allowOffLink = false): boolean {
  if (family === 6 && isLinkLocalV6(address)) return false;
  if (allowOffLink) return true;
  if (arrivalIface === undefined) return false;
  const home = networkOf(address, family, interfaces);
  if (home === undefined) return false;
  return arrivalIface === SOME_LINK ? !home.internal : home.name === arrivalIface;
}
