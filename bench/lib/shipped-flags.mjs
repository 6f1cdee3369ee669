// In-process benchmarks must measure the JIT the agent runs on: node's flags as shipped
// (bin/node-flags: no TurboFan, where for instance a for-of over a Map allocates per entry).
// bench/run.mjs passes them; a benchmark run directly calls this first and runs itself again
// with them unless they are already given.
import { spawnSync } from 'node:child_process';
import { nodeCommandLineFlags } from '../../dist/src/v8-flags.js';

/** Re-runs this script under bin/node-flags (same arguments, same stdio) and exits with its status, unless already under them. */
export function rerunUnderShippedFlags() {
  const shipped = nodeCommandLineFlags();
  if (shipped.every((f) => process.execArgv.includes(f))) return;
  const r = spawnSync(process.execPath, [...shipped, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
