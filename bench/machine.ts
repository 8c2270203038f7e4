/** Facts about the machine and runtime, recorded with every result. */
import { cpus, totalmem, release, platform, arch, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { CURVE25519_PROVIDER } from '../src/crypto/primitives.js';

export interface MachineFacts {
  date: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  openssl: string;
  v8: string;
  ws: string;
  mcpSdk: string;
  /** Who computes Ed25519 and X25519 in this process (the server's is the same: same environment). */
  curve25519: string;
  sodiumNative: string;
  /** 1-minute load average when the run started (other work on the machine skews absolute numbers). */
  loadAverage1m: number;
}

function packageVersion(name: string): string {
  try {
    const url = new URL(`../../node_modules/${name}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function machineFacts(): MachineFacts {
  const list = cpus();
  return {
    date: new Date().toISOString(),
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    openssl: process.versions.openssl ?? 'unknown',
    v8: process.versions.v8,
    ws: packageVersion('ws'),
    mcpSdk: packageVersion('@modelcontextprotocol/sdk'),
    curve25519: CURVE25519_PROVIDER,
    sodiumNative: packageVersion('sodium-native'),
    loadAverage1m: Math.round(loadavg()[0]! * 100) / 100,
  };
}
