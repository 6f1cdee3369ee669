/** The agent's name and version, from package.json (found from this module's location). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function agentVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'taskstats-agent' && typeof pkg.version === 'string') return (cached = pkg.version);
    } catch {
      // not here: go up
    }
    dir = dirname(dir);
  }
  return (cached = '0.0.0-unknown');
}
