/**
 * Test helper: real cgroup v2 directories with a real process inside, for the tests of this
 * plugin (not part of the processor). Everything it creates lives under one per-run directory
 * below the v2 root and is removed by cleanup().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function cgroup2Root(): string | undefined {
  // hybrid hosts mount the v2 hierarchy at /sys/fs/cgroup/unified, v2-only hosts at /sys/fs/cgroup
  for (const root of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    if (existsSync(join(root, 'cgroup.procs')) && existsSync(join(root, 'cgroup.stat'))) return root;
  }
  return undefined;
}

export const canUseCgroups = (): boolean => process.getuid?.() === 0 && cgroup2Root() !== undefined;

export class TestCgroups {
  readonly root: string;
  /** Directory name below the v2 root that holds everything of this run. */
  readonly base: string;
  private readonly dirs: string[] = [];
  private readonly children: ChildProcess[] = [];

  constructor(label: string) {
    const root = cgroup2Root();
    if (!root) throw new Error('no cgroup v2 hierarchy found');
    this.root = root;
    this.base = `taskstats-${label}-${process.pid}`;
  }

  /**
   * Creates `<root>/<base>/<relative>` (every level), starts `sleep` inside it and returns the
   * process's cgroup path as the kernel reports it in /proc/PID/cgroup (the `0::` line).
   */
  async runIn(relative: string): Promise<{ pid: number; cgroupPath: string }> {
    const parts = [this.base, ...relative.split('/').filter(Boolean)];
    let dir = this.root;
    for (const p of parts) {
      dir = join(dir, p);
      if (!existsSync(dir)) {
        mkdirSync(dir);
        this.dirs.push(dir);
      }
    }
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    this.children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    writeFileSync(join(dir, 'cgroup.procs'), String(child.pid));
    const line = readFileSync(`/proc/${child.pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    if (!line) throw new Error(`/proc/${child.pid}/cgroup has no cgroup v2 line`);
    return { pid: child.pid!, cgroupPath: line.slice(3) };
  }

  async cleanup(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) {
              resolve();
              return;
            }
            const t = setTimeout(resolve, 2000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGKILL');
          }),
      ),
    );
    for (const dir of this.dirs.reverse()) {
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
          await new Promise((r) => setTimeout(r, 50)); // EBUSY until the killed process is reaped
        }
      }
    }
  }
}
