/**
 * Network namespaces of the test's own (Linux, root): `unshare --net` makes
 * one with only a loopback interface, which is brought up; `run()` starts
 * processes inside it with `nsenter`. It is anonymous, so its name cannot
 * collide with anything and nothing needs removing: it disappears with its
 * last process. `close()` ends every process this helper started (the holder
 * last), and the holder also ends by itself when the test process dies (it
 * waits on a pipe from it), so a killed test run leaves no namespace behind.
 * Programs inside may use fixed ports (the README's examples use 8000) and
 * multicast (mDNS on port 5353) without meeting anything else on this machine.
 *
 * `startLan(n)` joins n such namespaces into one Ethernet segment: a bridge in
 * a hub namespace of its own, and in each host an `eth0` with 10.99.0.(k+1)/24
 * and, unless told otherwise, fd99::(k+1)/64.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { within } from '../transport/helpers.js';

export interface NetNamespace {
  /** The pid of the process holding the namespace (for `ip link ... netns PID`). */
  pid: number;
  /** Start `command args` inside the namespace. */
  run: (command: string, args: string[], options?: SpawnOptions) => ChildProcess;
  /** Run `command args` inside the namespace to its end (default at most 10 s); its output, or a rejection when it fails. */
  exec: (command: string, args: string[], options?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }) => Promise<string>;
  /** Kill what is still running (SIGKILL) and let the namespace go. */
  close: () => Promise<void>;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** Everything `child` writes, and how it ended (rejects unless it exits 0 within `ms`). */
async function completed(child: ChildProcess, ms: number, what: string): Promise<string> {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await within(once(child, 'exit'), ms, what)) as [number | null];
  if (code !== 0) throw new Error(`${what} failed (exit ${code}): ${out}`);
  return out;
}

export async function startNetNamespace(): Promise<NetNamespace> {
  // `unshare` and `sh` exec in place, so the holder's pid is the one spawned here. It waits for
  // the end of its stdin: when this process dies, the pipe closes and the namespace goes with it.
  const holder = spawn('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && echo ready && read _'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    holder.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    holder.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    holder.once('exit', (code) => reject(new Error(`unshare --net failed (exit ${code}): ${out}`)));
  });
  await within(ready, 10_000, 'the network namespace');
  const children: ChildProcess[] = [];
  const run: NetNamespace['run'] = (command, args, options = {}) => {
    const child = spawn('nsenter', ['-t', String(holder.pid), '-n', '--', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    children.push(child);
    return child;
  };
  return {
    pid: holder.pid!,
    run,
    exec: (command, args, options = {}) => completed(run(command, args, options.env ? { env: options.env } : {}), options.timeoutMs ?? 10_000, `${command} ${args.join(' ')}`),
    close: async () => {
      await Promise.all(children.map(stop));
      await stop(holder);
    },
  };
}

/**
 * Why namespaces cannot be made here (not root, no `unshare`, a sandbox that
 * forbids it), or undefined when they can: tests skip with this message.
 */
export async function netNamespaceUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the suite as root, as CI does)';
  try {
    const ns = await startNetNamespace();
    await ns.close();
    return undefined;
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message.split('\n')[0]}`;
  }
}

/** A host of a `Lan`: its namespace and its addresses on the segment. */
export interface LanHost extends NetNamespace {
  /** 10.99.0.(k+1) */
  ipv4: string;
  /** fd99::(k+1), when the LAN has IPv6. */
  ipv6: string | undefined;
}

export interface Lan {
  hosts: LanHost[];
  /**
   * Add one more host to the segment (its address follows the others'): a new
   * namespace, or `ns` (which the caller keeps and closes) given an `eth0`.
   */
  addHost: (ns?: NetNamespace) => Promise<LanHost>;
  /** Close every host and the hub. */
  close: () => Promise<void>;
}

/**
 * `n` namespaces on one Ethernet segment (a bridge in a hub namespace). IPv6
 * addresses are added without duplicate address detection, so they are usable
 * at once; link-local addresses likewise.
 */
export async function startLan(n: number, options: { ipv6?: boolean } = {}): Promise<Lan> {
  const ipv6 = options.ipv6 !== false;
  const hub = await startNetNamespace();
  const hosts: LanHost[] = [];
  const owned: NetNamespace[] = [];
  const close = async () => {
    await Promise.all(owned.map((h) => h.close()));
    await hub.close();
  };
  const addHost = async (given?: NetNamespace): Promise<LanHost> => {
    const k = hosts.length + 1;
    const ns = given ?? (await startNetNamespace());
    if (!given) owned.push(ns);
    const host: LanHost = { ...ns, ipv4: `10.99.0.${k}`, ipv6: ipv6 ? `fd99::${k}` : undefined };
    hosts.push(host);
    await hub.exec('ip', ['link', 'add', `h${k}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(ns.pid)]);
    await hub.exec('ip', ['link', 'set', `h${k}`, 'master', 'br0', 'up']);
    // /proc/sys/net is the namespace's own (no sysctl binary needed: procps may not be installed).
    const conf = '/proc/sys/net/ipv6/conf/eth0';
    await ns.exec('sh', ['-c', `echo 0 > ${conf}/accept_dad${ipv6 ? '' : ` && echo 1 > ${conf}/disable_ipv6`}`]);
    await ns.exec('ip', ['addr', 'add', `${host.ipv4}/24`, 'dev', 'eth0']);
    if (ipv6) await ns.exec('ip', ['-6', 'addr', 'add', `${host.ipv6}/64`, 'dev', 'eth0', 'nodad']);
    await ns.exec('ip', ['link', 'set', 'eth0', 'up']);
    return host;
  };
  try {
    // Snooping off: with no IGMP querier on the segment, a snooping bridge may stop forwarding multicast.
    await hub.exec('ip', ['link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
    await hub.exec('ip', ['link', 'set', 'br0', 'up']);
    for (let i = 0; i < n; i++) await addHost();
  } catch (err) {
    await close();
    throw err;
  }
  return { hosts, addHost, close };
}
