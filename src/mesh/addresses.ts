/**
 * The addresses a node announces in its record (PROTOCOL.md §13.2.1): the
 * URLs given for it (behind a proxy or NAT, only the operator knows them), or
 * else the ones its server listens on. A server bound to a wildcard address
 * announces the addresses of its network interfaces, loopback only when there
 * is nothing else.
 */
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import type { AddressInfo } from 'node:net';
import { isRecordAddress, MAX_RECORD_ADDRESSES } from '../discovery/record.js';

const WILDCARDS = new Set(['0.0.0.0', '::', '::0', '0:0:0:0:0:0:0:0']);

/** `ws://host:port/path` for an IP address (IPv6 in brackets, zone ids dropped: a record address has none). */
export function wsUrl(address: string, port: number, path = ''): string {
  const host = address.includes(':') ? `[${address.split('%')[0]!.toLowerCase()}]` : address.toLowerCase();
  return `ws://${host}:${port}${path}`;
}

/**
 * The URLs to announce for a server listening on `address`, with `path`
 * (e.g. `/mcp`; default none). At most MAX_RECORD_ADDRESSES, all in the record
 * grammar.
 * @param interfaces default `os.networkInterfaces()`.
 */
export function listeningUrls(address: AddressInfo, path = '', interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  let hosts: string[];
  if (!WILDCARDS.has(address.address)) hosts = [address.address];
  else {
    const ipv6 = address.family === 'IPv6';
    const all = Object.values(interfaces).flatMap((list) => list ?? []);
    // IPv6 link-local addresses need a zone to be dialled, which a URL in a record cannot carry.
    const usable = all.filter((i) => (i.family === 'IPv4' || (ipv6 && !i.address.toLowerCase().startsWith('fe80:'))));
    const external = usable.filter((i) => !i.internal).map((i) => i.address);
    hosts = external.length > 0 ? external : usable.map((i) => i.address);
    if (hosts.length === 0) hosts = [ipv6 ? '::1' : '127.0.0.1'];
  }
  const urls = [...new Set(hosts.map((h) => wsUrl(h, address.port, path)))].filter(isRecordAddress);
  return urls.slice(0, MAX_RECORD_ADDRESSES);
}
