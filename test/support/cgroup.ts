/**
 * Test helper: create and remove cgroup v2 groups for tests that run as root.
 *
 * The v2 hierarchy is wherever cgroup2 is mounted: /sys/fs/cgroup/unified on hybrid hosts (such
 * as the development machine), /sys/fs/cgroup on v2-only hosts. It is found in
 * /proc/self/mountinfo, not guessed.
 *
 *   const cg = createTestCgroup('attribution');   // /sys/fs/cgroup/unified/taskstats-test-attribution-<pid>-<n>
 *   spawn('sh', ['-c', `echo $$ > ${cg.procsFile}; exec my-workload`]);
 *   ... cg.cgroupPath is what /proc/PID/cgroup shows ("/taskstats-test-attribution-...")
 *   await cg.remove();                              // kills what is left, waits, rmdir
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { detectCgroupMounts } from '../../plugins/taskstats/cgroup-path.js';

/** Mount point of the cgroup v2 hierarchy, or undefined when cgroup2 is not mounted. */
export function cgroupV2Root(): string | undefined {
  return detectCgroupMounts().v2;
}

/** Why cgroup tests cannot run here (not root, no cgroup v2), or undefined when they can. */
export function cgroupTestSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (creates cgroups)';
  const root = cgroupV2Root();
  if (root === undefined) return 'no cgroup v2 hierarchy mounted';
  if (!existsSync(join(root, 'cgroup.procs'))) return `${root} is not a cgroup v2 root`;
  return undefined;
}

export interface TestCgroup {
  /** Directory of the group, e.g. /sys/fs/cgroup/unified/taskstats-test-x-123-1. */
  readonly dir: string;
  /** The path as /proc/PID/cgroup prints it on the `0::` line, e.g. /taskstats-test-x-123-1. */
  readonly cgroupPath: string;
  /** Write a pid here to move that process (all its threads) into the group. */
  readonly procsFile: string;
  /** Pids currently in the group. */
  pids(): number[];
  /** Moves a process into the group. */
  add(pid: number): void;
  /** Kills every process in the group, waits until it is empty and removes it. Idempotent. */
  remove(timeoutMs?: number): Promise<void>;
}

let counter = 0;

/** Creates a fresh group directly under the v2 root. Throws when cgroup tests cannot run. */
export function createTestCgroup(label: string): TestCgroup {
  const why = cgroupTestSkipReason();
  if (why !== undefined) throw new Error(`cannot create a test cgroup: ${why}`);
  const root = cgroupV2Root()!;
  const name = `taskstats-test-${label.replace(/[^A-Za-z0-9_.-]/g, '_')}-${process.pid}-${++counter}`;
  const dir = join(root, name);
  mkdirSync(dir);
  const procsFile = join(dir, 'cgroup.procs');
  let removed = false;
  const pids = (): number[] => {
    try {
      return readFileSync(procsFile, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map(Number);
    } catch {
      return [];
    }
  };
  return {
    dir,
    cgroupPath: `/${name}`,
    procsFile,
    pids,
    add(pid: number) {
      writeFileSync(procsFile, `${pid}\n`);
    },
    async remove(timeoutMs = 10_000) {
      if (removed) return;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = pids();
        if (left.length === 0) {
          try {
            rmdirSync(dir);
            removed = true;
            return;
          } catch (e) {
            // EBUSY while the last zombies are released: retry until the deadline.
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
              removed = true;
              return;
            }
            if (Date.now() > deadline) throw e;
          }
        } else {
          // cgroup.kill (Linux 5.14+) kills every process of the group at once, forks in flight too.
          const killFile = join(dir, 'cgroup.kill');
          if (existsSync(killFile)) {
            try {
              writeFileSync(killFile, '1');
            } catch {
              /* raced with exit */
            }
          } else {
            for (const pid of left) {
              try {
                process.kill(pid, 'SIGKILL');
              } catch {
                /* gone */
              }
            }
          }
          if (Date.now() > deadline) throw new Error(`test cgroup ${dir} still has processes ${left.join(', ')}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}
