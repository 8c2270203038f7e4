/**
 * Packaging: `npm pack` gives a tarball that installs globally and provides a
 * working `mcp-e2e` command and a typed library entry point, and whose
 * declarations compile, with README's library example, for a user who
 * installs nothing but mcp-e2e, the MCP SDK, zod and typescript.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT, tempDir } from './helpers.js';

const npm = (args: string[], cwd: string) => spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: 180_000 });

let tarball = '';
before(() => {
  const packDir = tempDir('mcp-e2e-pack-');
  // dist/ is already built by the test command; --ignore-scripts keeps prepack from rebuilding it under running tests.
  const pack = npm(['pack', '--ignore-scripts', '--pack-destination', packDir], ROOT);
  assert.equal(pack.status, 0, pack.stderr);
  const name = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
  assert.ok(name, 'no tarball');
  tarball = join(packDir, name);
});

test('npm pack → npm install -g → a working mcp-e2e command and typed library', { timeout: 240_000 }, () => {
  const prefix = tempDir('mcp-e2e-global-');
  const install = npm(['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], dirname(tarball));
  assert.equal(install.status, 0, install.stderr);
  const bin = join(prefix, 'bin', 'mcp-e2e');
  const home = tempDir();
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  assert.equal(spawnSync(bin, ['keygen', '--home', home], { encoding: 'utf8' }).status, 0);
  const id = JSON.parse(spawnSync(bin, ['id', '--json', '--home', home], { encoding: 'utf8' }).stdout);
  assert.match(id.node_id, /^[0-9a-f]{64}$/);
  const pkg = join(prefix, 'lib', 'node_modules', 'mcp-e2e');
  assert.ok(existsSync(join(pkg, 'dist', 'src', 'index.d.ts')), 'type declarations missing');
  assert.ok(!existsSync(join(pkg, 'dist', 'test')), 'tests shipped in the package');
  const lib = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(join(pkg, 'dist/src/index.js'))}); console.log(typeof m.NodeIdentity.generate, typeof m.EncryptedWebSocketClientTransport)`], { encoding: 'utf8' });
  assert.equal(lib.stdout.trim(), 'function function', lib.stderr);
});

/** README's library example: the block between the `library-example` markers, without its fences. */
function readmeLibraryExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /^<!-- library-example\b.*-->\n```ts\n([\s\S]*?)^```\n<!-- \/library-example -->$/m.exec(readme);
  assert.ok(block, 'README.md has no ```ts block between <!-- library-example --> and <!-- /library-example -->');
  return block[1]!;
}

/**
 * A user's project, as npm would lay it out, without the registry: the
 * tarball unpacked into node_modules/mcp-e2e, and links into this
 * repository's node_modules for what the user installs (the SDK, zod,
 * typescript) and for what npm installs with the tarball (its dependencies,
 * optional dependencies and required peers, read from the packed
 * package.json). Nothing else: no @types/ws, no devDependencies.
 */
function userProject(dir: string): void {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
  const unpacked = join(dir, 'node_modules', 'mcp-e2e');
  mkdirSync(unpacked, { recursive: true });
  const tar = spawnSync('tar', ['-xzf', tarball, '-C', unpacked, '--strip-components=1'], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);
  const manifest = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
    optionalDependencies?: Record<string, string>;
    peerDependencies?: Record<string, string>;
    peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  };
  const requiredPeers = Object.keys(manifest.peerDependencies ?? {}).filter((name) => !manifest.peerDependenciesMeta?.[name]?.optional);
  const required = new Set(['@modelcontextprotocol/sdk', 'zod', 'typescript', ...Object.keys(manifest.dependencies ?? {}), ...requiredPeers]);
  const optional = Object.keys(manifest.optionalDependencies ?? {}).filter((name) => existsSync(join(ROOT, 'node_modules', name)));
  for (const name of [...required, ...optional]) {
    const target = join(ROOT, 'node_modules', name);
    assert.ok(existsSync(target), `${name} is not installed in this repository`);
    mkdirSync(dirname(join(dir, 'node_modules', name)), { recursive: true });
    symlinkSync(target, join(dir, 'node_modules', name), 'dir');
  }
}

test("README's library example compiles (tsc --strict, module nodenext) against the packed package alone, and runs", { timeout: 180_000 }, () => {
  const dir = tempDir('mcp-e2e-user-');
  try {
    userProject(dir);
    writeFileSync(join(dir, 'example.ts'), readmeLibraryExample());
    const tsc = spawnSync(process.execPath, [join(dir, 'node_modules/typescript/bin/tsc'), '--strict', '--module', 'nodenext', 'example.ts'], { cwd: dir, encoding: 'utf8', timeout: 150_000 });
    assert.equal(tsc.status, 0, `tsc failed:\n${tsc.stdout}${tsc.stderr}`);
    // It connects a client to a server in this one process, calls a tool and
    // closes both: the process must then exit by itself.
    const run = spawnSync(process.execPath, ['example.js'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 0, `example.js failed or did not exit:\n${run.stdout}${run.stderr}`);
    const seen = /^the server saw \[\{"type":"text","text":"([0-9a-f-]+)"\}\]; we are ([0-9a-f-]+)\n$/.exec(run.stdout);
    assert.ok(seen, `unexpected output: ${run.stdout}`);
    assert.match(seen[2]!, /^[0-9a-f]{4}(-[0-9a-f]{4}){4}$/);
    assert.equal(seen[1], seen[2], 'the server saw another identity than the client has');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
