/**
 * A real avahi (Debian's avahi-daemon and avahi-utils) inside a test's
 * network namespace, with a private D-Bus (the recipe of DISCOVERY-NOTES.md
 * and the lead's AVAHI.md, checked on this machine): a dbus-daemon of its
 * own on a socket in a temporary directory, and avahi-daemon under
 * `unshare -m` with a tmpfs on /run/avahi-daemon, so daemons in several
 * namespaces do not share a pid file. Nothing on the host is touched.
 */
import { type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { NetNamespace } from './netns.js';
import { deferred, within } from '../transport/helpers.js';

const PROGRAMS = ['avahi-daemon', 'avahi-browse', 'avahi-publish', 'dbus-daemon', 'unshare'];

/** Why avahi cannot run here (a program missing: .ci/run installs them), or undefined. */
export function avahiUnavailable(): string | undefined {
  const missing = PROGRAMS.filter((p) => spawnSync('sh', ['-c', `command -v ${p}`]).status !== 0);
  return missing.length ? `not installed: ${missing.join(', ')} (Debian avahi-daemon avahi-utils dbus; .ci/run installs them)` : undefined;
}

export interface Avahi {
  /** The host name avahi announces (without .local). */
  hostName: string;
  /** `avahi-browse -rpt TYPE`: resolved lines (`=;iface;proto;name;type;domain;host;address;port;txt`), split at `;`. */
  browse: (type: string, timeoutMs?: number) => Promise<string[][]>;
  /** `avahi-publish -s NAME TYPE PORT TXT...`, running until closed. Resolves once avahi reports it established. */
  publish: (name: string, type: string, port: number, txt: string[]) => Promise<ChildProcess>;
  close: () => Promise<void>;
}

/** Resolves once `child` has printed `text` (either stream); rejects if it exits first or after 15 s. */
function printed(child: ChildProcess, text: string, what: string): Promise<void> {
  const seen = deferred();
  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString();
    if (out.includes(text)) seen.resolve();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  child.once('exit', (code) => seen.reject(new Error(`${what}: exited (${code}): ${out}`)));
  return within(seen.promise, 15_000, what);
}

/** Start dbus-daemon and avahi-daemon in `ns`, on interface `iface` (IPv4). */
export async function startAvahi(ns: NetNamespace, iface: string): Promise<Avahi> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-e2e-avahi-'));
  const bus = join(dir, 'bus.sock');
  const hostName = `avahi-${randomBytes(3).toString('hex')}`;
  const allow = ['method_call', 'signal', 'method_return', 'error'];
  writeFileSync(
    join(dir, 'dbus.conf'),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${bus}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/>${allow.map((t) => `<allow send_type="${t}"/><allow receive_type="${t}"/>`).join('')}<allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy></busconfig>
`,
  );
  writeFileSync(
    join(dir, 'avahi.conf'),
    `[server]\nhost-name=${hostName}\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=${iface}\nenable-dbus=yes\nratelimit-interval-usec=1000000\nratelimit-burst=1000\n[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\npublish-workstation=no\n`,
  );
  const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${bus}` };
  const started: ChildProcess[] = [];
  const close = async () => {
    for (const c of started.reverse()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    started.push(ns.run('dbus-daemon', [`--config-file=${join(dir, 'dbus.conf')}`, '--nofork', '--nopidfile']));
    const deadline = Date.now() + 10_000;
    while (!existsSync(bus)) {
      if (Date.now() > deadline) throw new Error('dbus-daemon did not create its socket');
      await new Promise((r) => setTimeout(r, 50));
    }
    const daemon = ns.run(
      'unshare',
      ['-m', 'sh', '-c', `mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && exec avahi-daemon -f ${join(dir, 'avahi.conf')} --no-drop-root --no-chroot --no-rlimits`],
      { env },
    );
    started.push(daemon);
    await printed(daemon, 'Server startup complete', 'avahi-daemon to start');
  } catch (err) {
    await close();
    throw err;
  }
  return {
    hostName,
    browse: async (type, timeoutMs = 10_000) => {
      const out = await ns.exec('avahi-browse', ['-rpt', type], { timeoutMs, env });
      return out.split('\n').filter((l) => l.startsWith('=;')).map((l) => l.split(';'));
    },
    publish: async (name, type, port, txt) => {
      const child = ns.run('avahi-publish', ['-s', name, type, String(port), ...txt], { env });
      started.push(child);
      await printed(child, 'Established', 'avahi-publish to establish the service');
      return child;
    },
    close,
  };
}
