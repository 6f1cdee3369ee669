import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { ATTR, SeverityNumber, type Attributes, type ComponentContext, type LogRecord, type Sample, type SampleSchema } from '../../src/api/index.js';
import { filterFactory } from './factory.js';
import type { FilterConfig } from './config.js';
import { globToRegExpSource } from './match.js';

const testdata = fileURLToPath(new URL('../../../plugins/filter/testdata/', import.meta.url));
const schema: SampleSchema = {
  id: 'test.process',
  metrics: [{ name: 'process.cpu.time', unit: 's', description: 'cpu', instrument: 'counter', valueType: 'double' }],
};

function ctx(id = 'filter'): ComponentContext {
  return {
    id,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    telemetry: { dropped() {}, counter: () => ({ add() {} }), gauge() {} },
  };
}

function sample(attributes: Attributes, commandLine?: string): Sample {
  return {
    schema,
    attributes,
    context: commandLine === undefined ? undefined : { [ATTR.COMMAND_LINE]: commandLine },
    values: new Float64Array([1]),
    final: true,
    timeMs: Date.now(),
  };
}

function attrs(command: string, cgroup: string): Attributes {
  return { [ATTR.EXECUTABLE_NAME]: command, [ATTR.CGROUP]: cgroup };
}

async function make(config: FilterConfig, id?: string) {
  const problems = filterFactory.validate!(config);
  assert.deepEqual(problems, [], 'config should be valid');
  const p = await filterFactory.create(ctx(id), config);
  await p.start();
  return p;
}

function names(batch: Sample[]): string[] {
  return batch.map((s) => `${s.attributes[ATTR.EXECUTABLE_NAME]}@${s.attributes[ATTR.CGROUP]}`);
}

describe('filter processor', () => {
  const nginx = attrs('nginx', '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice/cri-containerd-aa.scope');
  const bash = attrs('bash', '/user.slice/user-1000.slice/session-3.scope');
  const sshd = attrs('sshd', '/system.slice/ssh.service');
  const pg = attrs('postgres', '/kubepods/besteffort/pod0f1e/abc');

  test('include strict commands: only listed names pass (OR within the list)', async () => {
    const p = await make({ include: { match_type: 'strict', commands: ['nginx', 'postgres'] } });
    const out = await p.process([sample(nginx), sample(bash), sample(sshd), sample(pg)]);
    assert.deepEqual(names(out), [names([sample(nginx)])[0], names([sample(pg)])[0]]);
  });

  test('exclude regexp is unanchored unless the pattern anchors it', async () => {
    const p = await make({ exclude: { match_type: 'regexp', commands: ['sh'] } });
    const out = await p.process([sample(nginx), sample(bash), sample(sshd), sample(pg)]);
    // "sh" occurs in bash and sshd
    assert.deepEqual(
      out.map((s) => s.attributes[ATTR.EXECUTABLE_NAME]),
      ['nginx', 'postgres'],
    );
    const anchored = await make({ exclude: { match_type: 'regexp', commands: ['^sh$', '^ba'] } });
    const out2 = await anchored.process([sample(nginx), sample(bash), sample(sshd)]);
    assert.deepEqual(
      out2.map((s) => s.attributes[ATTR.EXECUTABLE_NAME]),
      ['nginx', 'sshd'],
    );
  });

  test('glob on cgroups: * stays in one segment, ** spans segments', async () => {
    const oneLevel = await make({ include: { match_type: 'glob', cgroups: ['/kubepods.slice/*'] } });
    assert.equal((await oneLevel.process([sample(nginx)])).length, 0, '* must not cross /');
    const deep = await make({ include: { match_type: 'glob', cgroups: ['/kubepods.slice/**', '/kubepods/*/pod*/*'] } });
    const out = await deep.process([sample(nginx), sample(bash), sample(sshd), sample(pg)]);
    assert.deepEqual(
      out.map((s) => s.attributes[ATTR.EXECUTABLE_NAME]),
      ['nginx', 'postgres'],
    );
    const cls = await make({ include: { match_type: 'glob', cgroups: ['/system.slice/[!x]sh.service', '/user.slice/user-100?.slice/**'] } });
    assert.deepEqual(
      (await cls.process([sample(nginx), sample(bash), sample(sshd)])).map((s) => s.attributes[ATTR.EXECUTABLE_NAME]),
      ['bash', 'sshd'],
    );
  });

  test('glob on commands: * matches any characters, also in command lines', async () => {
    assert.equal(new RegExp(globToRegExpSource('*nginx*', 'command')).test('/usr/sbin/nginx -g daemon off;'), true);
    const p = await make({ include: { match_type: 'glob', commands: ['*gunicorn*app:main*'], match_command_line: true } });
    const py = attrs('python3', '/system.slice/web.service');
    const out = await p.process([
      sample(py, '/usr/bin/python3 /srv/venv/bin/gunicorn --bind 0.0.0.0:80 app:main --workers 4'),
      sample(py, '/usr/bin/python3 manage.py migrate'),
      sample(py),
    ]);
    assert.equal(out.length, 1);
    assert.match(String(out[0]!.context![ATTR.COMMAND_LINE]), /gunicorn/);
  });

  test('commands and cgroups in one block must both match (AND across lists)', async () => {
    const p = await make({ exclude: { match_type: 'glob', commands: ['bash', 'nginx'], cgroups: ['/user.slice/**'] } });
    const out = await p.process([sample(nginx), sample(bash), sample(attrs('bash', '/system.slice/cron.service'))]);
    // only bash inside user.slice is dropped: nginx is outside user.slice, the other bash too
    assert.deepEqual(names(out), [names([sample(nginx)])[0], 'bash@/system.slice/cron.service']);
  });

  test('include then exclude in one instance', async () => {
    const p = await make({
      include: { match_type: 'glob', cgroups: ['/kubepods.slice/**', '/kubepods/**'] },
      exclude: { match_type: 'strict', commands: ['postgres'] },
    });
    assert.deepEqual(
      (await p.process([sample(nginx), sample(bash), sample(pg)])).map((s) => s.attributes[ATTR.EXECUTABLE_NAME]),
      ['nginx'],
    );
  });

  test('a sample without the attribute does not match: include drops it, exclude keeps it', async () => {
    const noComm: Attributes = { [ATTR.CGROUP]: '/x' };
    const inc = await make({ include: { commands: ['nginx'] } });
    const exc = await make({ exclude: { commands: ['nginx'] } });
    assert.equal((await inc.process([sample(noComm)])).length, 0);
    assert.equal((await exc.process([sample(noComm)])).length, 1);
  });

  test('match_command_line: patterns also try the command line; without it only the name', async () => {
    const py = attrs('python3', '/system.slice/a.service');
    const withLine = await make({ exclude: { match_type: 'regexp', commands: ['healthcheck\\.py'], match_command_line: true } });
    const withoutLine = await make({ exclude: { match_type: 'regexp', commands: ['healthcheck\\.py'] } });
    const batch = () => [sample(py, 'python3 /opt/healthcheck.py --once'), sample(py, 'python3 server.py')];
    assert.deepEqual(
      (await withLine.process(batch())).map((s) => s.context![ATTR.COMMAND_LINE]),
      ['python3 server.py'],
    );
    assert.equal((await withoutLine.process(batch())).length, 2);
  });

  test('several instances in one pipeline (filter/a then filter/b)', async () => {
    const a = await make({ include: { match_type: 'glob', cgroups: ['/kubepods**'] } }, 'filter/a');
    const b = await make({ exclude: { match_type: 'strict', commands: ['postgres'] } }, 'filter/b');
    const input = [sample(nginx), sample(bash), sample(sshd), sample(pg)];
    const out = await b.process(await a.process(input));
    assert.deepEqual(
      out.map((s) => s.attributes[ATTR.EXECUTABLE_NAME]),
      ['nginx'],
    );
  });

  test('decision is cached per (cgroup, command) and follows a replaced attributes object', async () => {
    const p = await make({ include: { match_type: 'regexp', commands: ['^ngin'] } });
    const shared = attrs('nginx', '/a');
    const batch = Array.from({ length: 1000 }, () => sample(shared));
    assert.equal((await p.process(batch)).length, 1000);
    // a processor upstream replaced the object (never mutates it): the new object is judged anew
    const renamed = { ...shared, [ATTR.EXECUTABLE_NAME]: 'httpd' };
    assert.equal((await p.process([sample(renamed), sample(shared)])).length, 1);
  });

  test('testdata/valid.yaml: every processor validates', () => {
    const doc = parse(readFileSync(join(testdata, 'valid.yaml'), 'utf8')) as { processors: Record<string, FilterConfig> };
    for (const [id, cfg] of Object.entries(doc.processors)) {
      assert.deepEqual(filterFactory.validate!(cfg), [], id);
    }
  });

  test('testdata/invalid.yaml: each problem names its path', () => {
    const doc = parse(readFileSync(join(testdata, 'invalid.yaml'), 'utf8')) as { processors: Record<string, FilterConfig> };
    const byId = (id: string) => filterFactory.validate!(doc.processors[id]!);
    const regexp = byId('filter/bad_regexp');
    assert.equal(regexp.length, 1);
    assert.equal(regexp[0]!.path, 'include.commands[2]');
    assert.match(regexp[0]!.message, /invalid regexp pattern "\(unclosed"/);
    const glob = byId('filter/bad_glob');
    assert.deepEqual(
      glob.map((p) => p.path),
      ['exclude.cgroups[1]'],
    );
    assert.match(glob[0]!.message, /unclosed "\["/);
    assert.deepEqual(
      byId('filter/empty_block').map((p) => p.path),
      ['include'],
    );
    assert.deepEqual(
      byId('filter/cmdline_without_commands').map((p) => p.path),
      ['exclude.match_command_line'],
    );
  });
});

// Exit events as docs/events.md describes them (the attributes the filter reads).
function exitEvent(
  command: string,
  outcome: { code?: number; signal?: string; core?: boolean },
  durationS: number,
  cpuS: number,
  more: Attributes = {},
): LogRecord {
  const a: Attributes = {
    [ATTR.EXECUTABLE_NAME]: command,
    [ATTR.CGROUP]: '/system.slice/x.service',
    'process.linux.exit.core_dumped': outcome.core ?? false,
    'process.linux.duration': durationS,
    'process.linux.cpu.user_time': cpuS / 2,
    'process.linux.cpu.system_time': cpuS / 2,
    ...more,
  };
  if (outcome.signal !== undefined) a['process.linux.exit.signal'] = outcome.signal;
  else a['process.exit.code'] = outcome.code ?? 0;
  return { timeMs: 0, severityNumber: SeverityNumber.INFO, eventName: 'process.exit', body: command, attributes: a };
}
const summary: LogRecord = {
  timeMs: 0,
  severityNumber: SeverityNumber.INFO,
  eventName: 'process.exit.suppressed',
  body: 'held back',
  attributes: { [ATTR.EXECUTABLE_NAME]: 'ok', [ATTR.CGROUP]: '/system.slice/x.service', 'process.linux.exit.suppressed.successes': 5 },
};

describe('filter processor on exit events (logs)', () => {
  const events = [
    exitEvent('ok', { code: 0 }, 0.01, 0.001),
    exitEvent('three', { code: 3 }, 0.02, 0.002),
    exitEvent('killed', { signal: 'SIGKILL' }, 5, 0.5),
    exitEvent('crash', { signal: 'SIGSEGV', core: true }, 0.001, 0.0005),
    exitEvent('long', { code: 0 }, 120, 2),
  ];
  const names = (b: LogRecord[]) => b.map((r) => String(r.attributes[ATTR.EXECUTABLE_NAME]));
  async function run(config: FilterConfig, batch: LogRecord[] = [...events, summary]) {
    const p = await make(config);
    return names(await p.processLogs([...batch]));
  }

  test('outcomes: any of them; records without an exit status (summaries) are not judged', async () => {
    assert.deepEqual(await run({ include: { outcomes: ['non_zero_exit_code'] } }), ['three', 'ok']);
    assert.deepEqual(await run({ include: { outcomes: ['killed_by_signal'] } }), ['killed', 'crash', 'ok']);
    assert.deepEqual(await run({ include: { outcomes: ['core_dumped'] } }), ['crash', 'ok']);
    assert.deepEqual(await run({ include: { outcomes: ['non_zero_exit_code', 'killed_by_signal', 'core_dumped'] } }), ['three', 'killed', 'crash', 'ok']);
    assert.deepEqual(await run({ exclude: { outcomes: ['killed_by_signal'] } }), ['ok', 'three', 'long', 'ok']);
  });

  test('min_duration and min_cpu (user + system), ANDed with each other and with the patterns', async () => {
    assert.deepEqual(await run({ include: { min_duration: 1000 } }), ['killed', 'long', 'ok']);
    assert.deepEqual(await run({ include: { min_cpu: 1000 } }), ['long', 'ok']);
    assert.deepEqual(await run({ include: { min_duration: 1000, min_cpu: 100 } }), ['killed', 'long', 'ok']);
    assert.deepEqual(await run({ include: { min_duration: 1000, outcomes: ['killed_by_signal'] } }), ['killed', 'ok']);
    // with a pattern, the pattern applies to every record, the summary included
    assert.deepEqual(await run({ include: { commands: ['long', 'killed'], min_cpu: 100 } }), ['killed', 'long']);
  });

  test('commands, cgroups and command lines match records as they match samples', async () => {
    const withLine = exitEvent('python3', { code: 1 }, 1, 1, { [ATTR.COMMAND_LINE]: 'python3 /opt/backup.py --full' });
    assert.deepEqual(await run({ exclude: { commands: ['ok', 'long'] } }), ['three', 'killed', 'crash']);
    assert.deepEqual(await run({ include: { match_type: 'glob', cgroups: ['/system.slice/*'] } }), ['ok', 'three', 'killed', 'crash', 'long', 'ok']);
    assert.deepEqual(await run({ include: { match_type: 'regexp', commands: ['backup\\.py'], match_command_line: true } }, [withLine, ...events]), ['python3']);
  });

  test('a block of exit criteria only leaves samples alone; with patterns, samples are judged by the patterns', async () => {
    const p = await make({ include: { outcomes: ['non_zero_exit_code'] }, exclude: { min_cpu: 1 } });
    const batch = [sample(attrs('nginx', '/a')), sample(attrs('bash', '/b'))];
    assert.equal((await p.process(batch)).length, 2);
    const q = await make({ include: { commands: ['nginx'], outcomes: ['killed_by_signal'] } });
    assert.deepEqual(names2(await q.process([sample(attrs('nginx', '/a')), sample(attrs('bash', '/b'))])), ['nginx@/a']);
  });

  test('config: a block of exit criteria alone is valid; unknown outcomes are refused by the schema', () => {
    assert.deepEqual(filterFactory.validate!({ include: { outcomes: ['core_dumped'] } }), []);
    assert.deepEqual(filterFactory.validate!({ include: { min_duration: 5 } }), []);
    assert.deepEqual(
      filterFactory.validate!({ include: {} }).map((p) => p.path),
      ['include'],
    );
    const outcomes = (filterFactory.configSchema.properties as Record<string, { properties: Record<string, { items: { enum: string[] } }> }>).include!
      .properties.outcomes!.items.enum;
    assert.deepEqual(outcomes, ['non_zero_exit_code', 'killed_by_signal', 'core_dumped']);
  });
});

function names2(batch: Sample[]): string[] {
  return batch.map((s) => `${s.attributes[ATTR.EXECUTABLE_NAME]}@${s.attributes[ATTR.CGROUP]}`);
}

// Real processes: the attributes a source would build from /proc for a process running in a
// cgroup this test creates, pushed through the filter.
function cgroup2Root(): string | undefined {
  for (const root of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    if (existsSync(join(root, 'cgroup.procs')) && existsSync(join(root, 'cgroup.stat'))) return root;
  }
  return undefined;
}

describe('filter on real processes', { timeout: 60_000 }, () => {
  const root = cgroup2Root();
  const children: ChildProcess[] = [];
  const created: string[] = [];
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    for (const dir of created.reverse()) {
      try {
        rmdirSync(dir);
      } catch {
        /* already gone */
      }
    }
  });

  test(
    'include by cgroup glob and exclude by command line on live /proc data',
    { skip: !root || process.getuid?.() !== 0 ? 'needs root and cgroup v2' : false },
    async () => {
      const base = `taskstats-filter-test-${process.pid}`;
      const podDir = join(root!, base, 'kubepods', 'burstable', 'pod7d8c2f0e-1111-4a4a-9b9b-123456789abc');
      const ctrDir = join(podDir, 'f'.repeat(64));
      mkdirSync(ctrDir, { recursive: true });
      created.push(join(root!, base), join(root!, base, 'kubepods'), join(root!, base, 'kubepods', 'burstable'), podDir, ctrDir);
      const inPod = spawn('sleep', ['30'], { stdio: 'ignore' });
      const outside = spawn('sleep', ['31'], { stdio: 'ignore' });
      children.push(inPod, outside);
      writeFileSync(join(ctrDir, 'cgroup.procs'), String(inPod.pid));
      const fromProc = (pid: number): Sample => {
        const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
          .split('\n')
          .find((l) => l.startsWith('0::'))!
          .slice(3);
        const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
        return sample(attrs(comm, cgroup), cmdline);
      };
      const a = fromProc(inPod.pid!);
      const b = fromProc(outside.pid!);
      assert.equal(a.attributes[ATTR.CGROUP], `/${base}/kubepods/burstable/pod7d8c2f0e-1111-4a4a-9b9b-123456789abc/${'f'.repeat(64)}`);
      const pods = await make({ include: { match_type: 'glob', cgroups: ['/*/kubepods/**'] } });
      assert.deepEqual(await pods.process([a, b]), [a]);
      const noLongSleeps = await make({ exclude: { match_type: 'glob', commands: ['sleep 3?'], match_command_line: true } });
      assert.deepEqual(await noLongSleeps.process([fromProc(inPod.pid!), fromProc(outside.pid!)]), []);
    },
  );
});
