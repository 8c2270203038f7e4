/**
 * Keeps the registry benchmark (bench/registry.ts) from rotting: runs
 * `node dist/bench/registry.js --quick` in a child process and checks the
 * table and the JSON results.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REGISTRY_JS = fileURLToPath(new URL('../bench/registry.js', import.meta.url));

test('bench/registry.js --quick prints the table and writes every figure', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-e2e-bench-registry-smoke-'));
  try {
    const out = join(dir, 'r.json');
    const r = spawnSync(process.execPath, [REGISTRY_JS, '--quick', '--out', out], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\| 1,000 \| \d+ KiB \|/m);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    const [row] = json.results;
    assert.equal(row.peers, 1000);
    assert.ok(row.fileBytes > 1000 * 200, 'a record per peer on disk');
    for (const k of ['loadColdMs', 'loadWarmMs', 'parseAllMs', 'mergeWrite1Ms', 'mergeWrite100Ms', 'lookupFirstUs', 'lookupWarmUs', 'dialAddressesUs', 'ingestUs']) {
      assert.ok(row[k].median > 0, k);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
