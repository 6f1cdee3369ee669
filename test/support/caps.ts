/**
 * What this machine offers the tests (root, taskstats, cgroup2, libnl, cc), as probed once by
 * scripts/preflight.mjs. scripts/run-tests.mjs passes the result in TEST_CAPS (present ones) and
 * TEST_CAPS_MISSING (JSON: name -> why); a file run directly with `node --test` probes itself.
 *
 * A file that needs a capability for every test says so on a `// test-requires: root taskstats`
 * line (the runner then skips and counts the whole file); a file where only some tests need one
 * uses `needs()` as their skip option:
 *
 *   test('moves a process into a cgroup', { skip: needs('root', 'cgroup2') }, ...)
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export type Capability = 'root' | 'taskstats' | 'cgroup2' | 'libnl' | 'cc';

interface Caps {
  caps: string[];
  missing: Record<string, string>;
}

let probed: Caps | undefined;

function caps(): Caps {
  if (probed) return probed;
  const have = process.env.TEST_CAPS;
  if (have !== undefined) {
    let missing: Record<string, string> = {};
    try {
      missing = JSON.parse(process.env.TEST_CAPS_MISSING ?? '{}') as Record<string, string>;
    } catch {
      // the runner always sets valid JSON; a hand-set TEST_CAPS may omit it
    }
    probed = { caps: have.split(',').filter((c) => c !== ''), missing };
  } else {
    // dist/test/support/caps.js -> scripts/preflight.mjs
    const script = fileURLToPath(new URL('../../../scripts/preflight.mjs', import.meta.url));
    probed = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8' })) as Caps;
  }
  return probed;
}

/** The reason the first missing capability is missing (a skip reason), or false when all are here. */
export function needs(...wanted: Capability[]): string | false {
  const c = caps();
  for (const w of wanted) if (!c.caps.includes(w)) return `needs ${w}: ${c.missing[w] ?? 'missing'}`;
  return false;
}

/** True when every capability is present. */
export function has(...wanted: Capability[]): boolean {
  return needs(...wanted) === false;
}
