/**
 * Interfaces and networks of the mDNS source
 * (src/discovery/sources/mdns-interfaces.ts), on a made-up host with a LAN,
 * a Docker bridge, a VPN without multicast and loopback: which interfaces
 * carry mDNS, which interface a packet came in on, and which announced
 * addresses may be dialled (only those on the network they were announced on).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { arrivalInterface, isDialableFrom, listInterfaces, SOME_LINK, type InterfaceReader } from '../../src/discovery/sources/mdns-interfaces.js';

const info = (address: string, cidr: string, internal = false): NetworkInterfaceInfo =>
  ({ address, cidr, internal, family: address.includes(':') ? 'IPv6' : 'IPv4', netmask: '', mac: '00:00:00:00:00:00', ...(address.includes(':') ? { scopeid: 0 } : {}) }) as NetworkInterfaceInfo;

const reader = (ipv6Eth1 = false): InterfaceReader => ({
  addresses: () => ({
    lo: [info('127.0.0.1', '127.0.0.1/8', true), info('::1', '::1/128', true)],
    eth0: [info('192.168.1.20', '192.168.1.20/24'), info('fd00:1::20', 'fd00:1::20/64'), info('fe80::1%eth0', 'fe80::1/64')],
    docker0: [info('172.17.0.1', '172.17.0.1/16')],
    wg0: [info('10.8.0.2', '10.8.0.2/24')],
    ...(ipv6Eth1 ? { eth1: [info('fe80::2%eth1', 'fe80::2/64')] } : {}),
  }),
  // wg0 is not in the kernel's multicast groups (WireGuard has no multicast).
  multicast: () => ({ v4: new Set(['lo', 'eth0', 'docker0']), v6: new Set(['lo', 'eth0', 'eth1']) }),
});

test('interfaces: up, multicast-capable (and loopback); one without multicast is left out; a list of names restricts', () => {
  const all = listInterfaces(undefined, reader());
  assert.deepEqual(all.map((i) => i.name), ['lo', 'eth0', 'docker0']);
  assert.deepEqual(all.find((i) => i.name === 'eth0')!.ipv6, ['fd00:1::20', 'fe80::1'], 'zones dropped');
  assert.deepEqual(listInterfaces(['eth0'], reader()).map((i) => i.name), ['eth0']);
  const unknown: InterfaceReader = { ...reader(), multicast: () => ({ v4: undefined, v6: undefined }) };
  assert.equal(listInterfaces(undefined, unknown).length, 4, 'where the kernel cannot be asked, every interface is tried');
});

test('the arrival interface is the one whose network holds the sender', () => {
  const ifs = listInterfaces(undefined, reader());
  assert.equal(arrivalInterface('192.168.1.77', 4, ifs), 'eth0');
  assert.equal(arrivalInterface('172.17.0.5', 4, ifs), 'docker0');
  assert.equal(arrivalInterface('127.0.0.1', 4, ifs), 'lo');
  assert.equal(arrivalInterface('8.8.8.8', 4, ifs), undefined);
  assert.equal(arrivalInterface('fe80::99%eth0', 6, ifs), 'eth0', 'link-local: the only IPv6 interface');
  assert.equal(arrivalInterface('fe80::99', 6, listInterfaces(undefined, reader(true))), SOME_LINK, 'link-local with two IPv6 interfaces: cannot tell');
});

test('dialable: only addresses on the network they were announced on; loopback only from loopback; never link-local IPv6', () => {
  const ifs = listInterfaces(undefined, reader());
  assert.equal(isDialableFrom('192.168.1.30', 4, 'eth0', ifs), true);
  assert.equal(isDialableFrom('fd00:1::30', 6, 'eth0', ifs), true);
  assert.equal(isDialableFrom('172.17.0.5', 4, 'eth0', ifs), false, "a container bridge's address announced on the LAN");
  assert.equal(isDialableFrom('10.8.0.9', 4, 'eth0', ifs), false, "a VPN's address announced on the LAN");
  assert.equal(isDialableFrom('172.17.0.5', 4, 'docker0', ifs), true, 'the same address announced on the bridge itself');
  assert.equal(isDialableFrom('127.0.0.1', 4, 'eth0', ifs), false, 'a LAN host announcing loopback');
  assert.equal(isDialableFrom('127.0.0.1', 4, 'lo', ifs), true);
  assert.equal(isDialableFrom('fe80::30', 6, 'eth0', ifs), false);
  assert.equal(isDialableFrom('192.168.1.30', 4, undefined, ifs), false, 'a sender on none of our networks');
  assert.equal(isDialableFrom('192.168.1.30', 4, SOME_LINK, ifs), true);
  assert.equal(isDialableFrom('172.17.0.5', 4, 'eth0', ifs, true), true, 'unless told to (allowOffLinkAddresses)');
  assert.equal(isDialableFrom('fe80::30', 6, 'eth0', ifs, true), false, 'link-local stays undialable');
});
