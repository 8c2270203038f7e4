/**
 * Announcing one `_mcp-e2e._tcp` service with @homebridge/ciao, the responder
 * that does what RFC 6762 asks of one: probing (§8.1), tie-breaking
 * simultaneous probes (§8.2), renaming on a conflict (`name (2)`, §9),
 * announcing (§8.3), answering with only the addresses of the interface a
 * query came in on (§6.2), known-answer suppression (§7.1), 20-120 ms
 * response jitter (§6), and goodbyes with TTL 0 on shutdown (§10.1). It
 * passes Apple's Bonjour conformance test (DISCOVERY-NOTES.md).
 *
 * ciao is loaded only when something is announced, and its one global side
 * effect is undone: its entry point installs source-map-support, which
 * replaces `Error.prepareStackTrace` and `process.emit` of the whole process.
 * A library must not change how its host prints errors.
 */
import { createRequire } from 'node:module';
import type { CiaoService, Responder, ResponderOptions, ServiceOptions } from '@homebridge/ciao';
import { encodeTxt, hostNameFor, instanceNameFor, SERVICE_TYPE, type ServiceTxt } from './mdns-wire.js';

type Ciao = typeof import('@homebridge/ciao');
let ciao: Ciao | undefined;

/** ciao, loaded once, with the process's stack-trace hook and `process.emit` put back as they were. */
function loadCiao(): Ciao {
  if (ciao) return ciao;
  const prepare = Error.prepareStackTrace;
  const emit = process.emit;
  try {
    ciao = createRequire(import.meta.url)('@homebridge/ciao') as Ciao;
  } finally {
    Error.prepareStackTrace = prepare;
    process.emit = emit;
  }
  return ciao;
}

/** What to announce. */
export interface Announcement extends ServiceTxt {
  /** The TCP port the endpoint listens on. */
  port: number;
  /** A human name for the instance (default: the host name). */
  name: string;
  /** The exact instance label to ask for, instead of `<name>-<12 hex of id>` (tests of conflicts). */
  instanceName?: string | undefined;
  /**
   * Announce only these local addresses (what the listener is bound to), not
   * every address of every interface. Undefined: all (a wildcard listener).
   */
  addresses?: readonly string[] | undefined;
  /** The listener accepts IPv6 (announce AAAA records). Default true. */
  ipv6?: boolean | undefined;
}

export interface AdvertiserOptions {
  /** Announce over IPv6 as well. Default true. */
  ipv6?: boolean | undefined;
  /** The instance name changed after a conflict (RFC 6762 §9). */
  onRename?: ((instance: string) => void) | undefined;
}

function sameAnnouncement(a: Announcement, b: Announcement): boolean {
  const txt = (x: Announcement) => JSON.stringify(encodeTxt(x));
  const addrs = (x: Announcement) => JSON.stringify(x.addresses ?? null);
  return a.port === b.port && a.name === b.name && a.instanceName === b.instanceName && a.ipv6 === b.ipv6 && addrs(a) === addrs(b) && txt(a) === txt(b);
}

/**
 * One announced service; `stop` sends its goodbyes. The interfaces are ours
 * to give (`setInterfaces`), not ciao's to find: ciao reads `ip -o link show`
 * every 15 s and drops every interface whose name there is not the one
 * `os.networkInterfaces` uses, which is every veth (`eth0@if3`), so inside a
 * container it would announce on loopback only. With a list given, ciao
 * spawns nothing; when the list changes the service is announced again on the
 * new one (probing first, as on any link change, RFC 6762 §8).
 */
export class MdnsAdvertiser {
  private responder: Responder | undefined;
  private service: CiaoService | undefined;
  private readonly options: AdvertiserOptions;
  private interfaces: readonly string[] = [];
  private current: Announcement | undefined;
  /** Announcements run one at a time (an interface change can come during one). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: AdvertiserOptions = {}) {
    this.options = options;
  }

  /** The instance label in use (after any rename), or undefined when nothing is announced. */
  get instanceName(): string | undefined {
    return this.service?.getFQDN().replace(/\._mcp-e2e\._tcp\.local\.?$/, '');
  }

  /**
   * Announce `a` (replacing what was announced): probes, renames if the name
   * is taken, then announces. Resolves once announced.
   * @throws RangeError for fields no browser would accept.
   */
  announce(a: Announcement): Promise<string> {
    const txt = Object.fromEntries(encodeTxt(a));
    if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new RangeError('"port" expected 1..65535');
    const previous = this.current;
    this.current = a;
    // The same announcement again (a record refresh changes nothing mDNS says): keep it as it is.
    // Announcing again would send goodbyes and probe anew, and every browser would see the node go and come back.
    if (previous && this.service && sameAnnouncement(previous, a)) return Promise.resolve(this.instanceName ?? '');
    return this.serialised(() => this.start(a, txt));
  }

  /** Announce on these interfaces from now on (names; loopback is always included by ciao). */
  setInterfaces(names: readonly string[]): void {
    const same = names.length === this.interfaces.length && names.every((n, i) => n === this.interfaces[i]);
    this.interfaces = [...names];
    const a = this.current;
    if (same || !a) return;
    void this.serialised(() => this.start(a, Object.fromEntries(encodeTxt(a)))).catch(() => undefined);
  }

  private serialised<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async start(a: Announcement, txt: Record<string, string>): Promise<string> {
    await this.withdraw();
    const name = a.instanceName ?? instanceNameFor(a.name, a.nodeId);
    // No interface yet (ciao would take an empty list as "find them yourself"): announced when one comes.
    if (this.interfaces.length === 0) return name;
    const { getResponder } = loadCiao();
    const responderOptions: ResponderOptions = { advertiseIpv6: this.options.ipv6 !== false, interface: [...this.interfaces] };
    if (this.options.ipv6 === false) responderOptions.disableIpv6 = true;
    this.responder = getResponder(responderOptions);
    const serviceOptions: ServiceOptions = {
      name,
      type: SERVICE_TYPE.slice(1, SERVICE_TYPE.indexOf('.')),
      port: a.port,
      hostname: hostNameFor(a.nodeId),
      txt,
      ...(a.addresses ? { restrictedAddresses: [...a.addresses] } : {}),
      ...(a.ipv6 === false || this.options.ipv6 === false ? { disabledIpv6: true } : {}),
    };
    const service = this.responder.createService(serviceOptions);
    this.service = service;
    service.on('name-change', () => this.options.onRename?.(this.instanceName ?? ''));
    await service.advertise();
    return this.instanceName ?? serviceOptions.name;
  }

  /** Withdraw the service with goodbyes (TTL 0) and release the responder. Safe to call again. */
  stop(): Promise<void> {
    this.current = undefined;
    return this.serialised(() => this.withdraw());
  }

  private async withdraw(): Promise<void> {
    const service = this.service;
    const responder = this.responder;
    this.service = undefined;
    this.responder = undefined;
    if (service) await service.end().catch(() => undefined);
    if (service) await service.destroy().catch(() => undefined);
    if (responder) await responder.shutdown().catch(() => undefined);
  }
}
