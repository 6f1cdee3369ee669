/**
 * The seed program's two modes as CLI sub-commands:
 *   taskstats-agent pid PID [--json]
 *   taskstats-agent exits [--cpumask LIST] [--json] [--duration SECONDS] [--count N]
 */
import { errorCodeOf, type CliCommand } from '../../src/api/index.js';
import { DELAY_KINDS, newTaskRecord, recordToJson, type TaskRecord } from './record.js';
import { LivePoller } from './live-poller.js';
import { ExitListener } from './exit-listener.js';
import { CPULIST_RE, impossibleCpus, parseCpulist, possibleCpus } from './config.js';
import { networkNamespaceWarning } from './receiver.js';

function ms(ns: number): string {
  return `${(ns / 1e6).toFixed(3)} ms`;
}
function usAsMs(us: number): string {
  return `${(us / 1000).toFixed(3)} ms`;
}

/** Readable indented text for one record. */
export function formatRecord(r: TaskRecord): string {
  const lines: string[] = [];
  const what = r.aggregate === 'tgid' ? 'thread group' : 'thread';
  const head = r.kind === 'exit' ? 'exit of' : 'process';
  lines.push(`${head} ${r.comm || '?'} (${what} record, taskstats v${r.version})`);
  lines.push(`  pid ${r.pid}  tgid ${r.tgid}  ppid ${r.ppid}  uid ${r.uid}  gid ${r.gid}  nice ${r.nice}  flags 0x${r.flags.toString(16)}`);
  if (r.startTimeSec > 0) lines.push(`  started ${new Date(r.startTimeSec * 1000).toISOString()}  elapsed ${(r.elapsedUs / 1e6).toFixed(3)} s`);
  if (r.kind === 'exit') {
    lines.push(r.exitSignal !== 0 ? `  killed by signal ${r.exitSignal}${r.coreDumped ? ' (core dumped)' : ''}` : `  exit code ${r.exitCode}`);
  }
  lines.push(`  cpu: user ${usAsMs(r.userUs)}, system ${usAsMs(r.systemUs)}, on cpu ${ms(r.cpuRunRealNs)} (virtual ${ms(r.cpuRunVirtualNs)})`);
  lines.push(`  memory: peak rss ${r.hiwaterRssKb} KiB, peak vm ${r.hiwaterVmKb} KiB; faults: minor ${r.minorFaults}, major ${r.majorFaults}`);
  lines.push(
    `  io: read_char ${r.readCharBytes} B, write_char ${r.writeCharBytes} B, read_bytes ${r.readBytes} B, write_bytes ${r.writeBytes} B, ` +
      `cancelled ${r.cancelledWriteBytes} B, syscalls r/w ${r.readSyscalls}/${r.writeSyscalls}`,
  );
  lines.push(`  context switches: voluntary ${r.voluntaryCtxSwitches}, involuntary ${r.involuntaryCtxSwitches}`);
  const rec = r as unknown as Record<string, number>;
  const delays: string[] = [];
  for (const k of DELAY_KINDS) {
    const count = rec[`${k}DelayCount`]!;
    const total = rec[`${k}DelayTotalNs`]!;
    const max = rec[`${k}DelayMaxNs`]!;
    const min = rec[`${k}DelayMinNs`]!;
    let s = `${k} ${count} x, total ${ms(total)}`;
    if (max >= 0 && count > 0) s += ` (max ${ms(max)}, min ${ms(min)})`;
    delays.push(s);
  }
  lines.push('  delays:');
  for (const d of delays) lines.push(`    ${d}`);
  return lines.join('\n');
}

interface ParsedArgs {
  positional: string[];
  flags: Map<string, string | true>;
}

function parseArgs(argv: string[], withValue: Set<string>): ParsedArgs | string {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (withValue.has(name)) {
        const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) return `--${name} needs a value`;
        flags.set(name, v);
      } else if (['json', 'help'].includes(name)) flags.set(name, true);
      else return `unknown option ${a}`;
    } else if (a === '-h') flags.set('help', true);
    else positional.push(a);
  }
  return { positional, flags };
}

function fail(cmd: string, err: unknown): number {
  const msg = err instanceof Error ? err.message : String(err);
  const code = errorCodeOf(err);
  process.stderr.write(`taskstats-agent ${cmd}: ${code ? `[${code}] ` : ''}${msg}\n`);
  return 1;
}

const PID_USAGE = `usage: taskstats-agent pid PID [--json]

Prints one process's taskstats: its thread group (CPU, delays and context switches of all its
threads, living and dead), with its identity (comm, uid, start time), memory, faults and I/O.
Needs CAP_NET_ADMIN.
  --json   one JSON object with snake_case fields`;

export const pidCommand: CliCommand = {
  name: 'pid',
  summary: "Print one process's taskstats (thread group, identity, delays)",
  usage: PID_USAGE,
  run: (argv) => Promise.resolve(printPid(argv)),
};

function printPid(argv: string[]): number {
  const a = parseArgs(argv, new Set());
  if (typeof a === 'string') return fail('pid', `${a}\n${PID_USAGE}`);
  if (a.flags.has('help')) {
    process.stdout.write(PID_USAGE + '\n');
    return 0;
  }
  if (a.positional.length !== 1 || !/^\d+$/.test(a.positional[0]!)) return fail('pid', `expected one numeric PID\n${PID_USAGE}`);
  const pid = Number(a.positional[0]);
  const poller = new LivePoller();
  try {
    poller.open();
    const rec = poller.query(pid, newTaskRecord());
    if (!rec) return fail('pid', `no process ${pid} (ESRCH)`);
    process.stdout.write((a.flags.has('json') ? JSON.stringify(recordToJson(rec)) : formatRecord(rec)) + '\n');
    return 0;
  } catch (err) {
    return fail('pid', err);
  } finally {
    poller.close();
  }
}

const EXITS_USAGE = `usage: taskstats-agent exits [--cpumask LIST] [--json] [--duration SECONDS] [--count N]

Streams a record for every task that exits (thread records, plus the thread group's record
when the last thread of a multi-threaded process ends). Needs CAP_NET_ADMIN and the initial
pid/network namespace. Stops after --duration seconds, --count exits, or on Ctrl-C.
  --cpumask LIST    CPUs to listen to, e.g. 0-3,5 (default: all possible CPUs)
  --json            one JSON object per line with snake_case fields
  --duration S      stop after S seconds
  --count N         stop after N exits`;

export const exitsCommand: CliCommand = {
  name: 'exits',
  summary: 'Stream exit records as processes end',
  usage: EXITS_USAGE,
  async run(argv) {
    const a = parseArgs(argv, new Set(['cpumask', 'duration', 'count']));
    if (typeof a === 'string') return fail('exits', `${a}\n${EXITS_USAGE}`);
    if (a.flags.has('help')) {
      process.stdout.write(EXITS_USAGE + '\n');
      return 0;
    }
    if (a.positional.length > 0) return fail('exits', `unexpected argument ${a.positional[0]}\n${EXITS_USAGE}`);
    const cpus = (a.flags.get('cpumask') as string | undefined) ?? possibleCpus();
    if (!CPULIST_RE.test(cpus) || !parseCpulist(cpus)) return fail('exits', `invalid --cpumask "${cpus}" (expected e.g. 0-3,5)`);
    const missing = impossibleCpus(cpus);
    if (missing.length > 0)
      return fail('exits', `--cpumask "${cpus}" names CPUs this machine does not have (${missing.slice(0, 5).join(', ')}); possible CPUs: ${possibleCpus()}`);
    const duration = a.flags.has('duration') ? Number(a.flags.get('duration')) : Infinity;
    if (!(duration > 0)) return fail('exits', '--duration must be a positive number of seconds');
    const count = a.flags.has('count') ? Number(a.flags.get('count')) : Infinity;
    if (!(count > 0) || (count !== Infinity && !Number.isInteger(count))) return fail('exits', '--count must be a positive integer');
    const json = a.flags.has('json');

    let seen = 0;
    let finish: (code: number) => void = () => undefined;
    const done = new Promise<number>((r) => (finish = r));
    const write = (rec: TaskRecord) => {
      process.stdout.write((json ? JSON.stringify(recordToJson(rec)) : formatRecord(rec)) + '\n');
    };
    const listener = new ExitListener({
      cpus,
      receiveBuffer: 16 * 1024 * 1024,
      coalesceMs: 0,
      handler: {
        exit(thread, group) {
          if (seen >= count) return;
          write(thread);
          if (group) write(group);
          if (++seen >= count) finish(0);
        },
        drained() {},
        kernelDrop() {
          process.stderr.write('taskstats-agent exits: the kernel dropped exit events (receive buffer full)\n');
        },
        parseError(status, errno) {
          process.stderr.write(`taskstats-agent exits: unparseable datagram (status ${status}, errno ${errno})\n`);
        },
      },
    });
    try {
      listener.start();
    } catch (err) {
      return fail('exits', err);
    }
    // On stderr, so that stdout stays one record (or one JSON object) after another.
    process.stderr.write(`taskstats-agent exits: listening on cpus ${cpus}\n`);
    const netns = networkNamespaceWarning();
    if (netns) process.stderr.write(`taskstats-agent exits: warning: ${netns}\n`);
    const onSignal = () => finish(0);
    // The reader went away (`exits | head`): stop quietly.
    const onStdoutError = () => finish(0);
    process.stdout.on('error', onStdoutError);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const timer = duration !== Infinity ? setTimeout(() => finish(0), duration * 1000) : null;
    const code = await done;
    if (timer) clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stdout.off('error', onStdoutError);
    listener.stop();
    return code;
  },
};
