/**
 * Config errors of the built-in processors as a user sees them: `taskstats-agent validate` on a
 * full config file (the real CLI as a process), each problem with its file position and path.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { repoRoot, runCli, tempDir } from '../../test/host/helpers.js';

const tmp = tempDir('taskstats-filter-validate-');
after(() => tmp.remove());

test('validate names the config path and line of every bad pattern and k8sattributes key', { timeout: 60_000 }, async () => {
  const file = tmp.write(
    'bad.yaml',
    `receivers:
  taskstats: {}
processors:
  filter/a:
    include:
      match_type: regexp
      commands: ['^nginx$', 'postgres', '(unclosed']
  filter/b:
    exclude:
      match_type: glob
      cgroups: ['/system.slice/*', '/kubepods/[abc']
  filter/c:
    include:
      match_type: fuzzy
      commands: [x]
  k8sattributes:
    auth_type: none
    extract:
      metadata: [k8s.pod.name, k8s.pod.colour]
    pod_delete_grace: soon
exporters:
  debug: {}
service:
  pipelines:
    metrics:
      receivers: [taskstats]
      processors: [filter/a, filter/b, filter/c, k8sattributes]
      exporters: [debug]
`,
  );
  const r = await runCli(['validate', '--config', file]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /bad\.yaml:7:\d+: processors\.filter\/a\.include\.commands\[2\]: invalid regexp pattern "\(unclosed"/);
  assert.match(r.stderr, /bad\.yaml:11:\d+: processors\.filter\/b\.exclude\.cgroups\[1\]: invalid glob pattern "\/kubepods\/\[abc": unclosed "\["/);
  assert.match(r.stderr, /bad\.yaml:14:\d+: processors\.filter\/c\.include\.match_type/);
  assert.match(r.stderr, /processors\.k8sattributes\.extract\.metadata\[1\]/);
  assert.match(r.stderr, /processors\.k8sattributes\.pod_delete_grace/);

  const good = tmp.write(
    'good.yaml',
    `receivers:
  taskstats: {}
processors:
  filter/pods:
    include: {match_type: glob, cgroups: ['/kubepods.slice/**', '/kubepods/**']}
  filter/noise:
    exclude: {match_type: regexp, commands: ['^(ba|da|z)?sh$'], match_command_line: true}
  k8sattributes:
    auth_type: none
    pod_delete_grace: 90s
exporters:
  debug: {}
service:
  pipelines:
    metrics:
      receivers: [taskstats]
      processors: [filter/pods, filter/noise, k8sattributes]
      exporters: [debug]
`,
  );
  const ok = await runCli(['validate', '--config', good]);
  assert.equal(ok.code, 0, ok.stderr);
});

/** A full config around the `processors:` of a testdata file, all of them in one pipeline. */
function around(file: string): string {
  const processors = (parse(readFileSync(join(repoRoot, file), 'utf8')) as { processors: Record<string, unknown> }).processors;
  return stringify({
    receivers: { taskstats: {} },
    processors,
    exporters: { debug: {} },
    service: { pipelines: { metrics: { receivers: ['taskstats'], processors: Object.keys(processors), exporters: ['debug'] } } },
  });
}

test('the testdata configs of filter and k8sattributes: valid ones pass validate, invalid ones fail with their paths', { timeout: 60_000 }, async () => {
  for (const file of ['plugins/filter/testdata/valid.yaml', 'plugins/k8sattributes/testdata/config.yaml']) {
    const r = await runCli(['validate', '--config', tmp.write(file.replace(/\//g, '_'), around(file))]);
    assert.equal(r.code, 0, `${file}: ${r.stderr}`);
  }
  const r = await runCli(['validate', '--config', tmp.write('invalid.yaml', around('plugins/filter/testdata/invalid.yaml'))]);
  assert.equal(r.code, 2);
  for (const path of [
    'filter/bad_regexp.include.commands[2]',
    'filter/bad_glob.exclude.cgroups[1]',
    'filter/empty_block.include',
    'filter/cmdline_without_commands.exclude.match_command_line',
  ]) {
    assert.ok(r.stderr.includes(`processors.${path}:`), `${path} in:\n${r.stderr}`);
  }
});

test("validate: exit-event keys (the receiver's events budgets, the filter's exit criteria) in a logs pipeline", { timeout: 60_000 }, async () => {
  const file = tmp.write(
    'events.yaml',
    `receivers:
  taskstats:
    events:
      successes_per_second: lots
      failures_per_second: unlimited
processors:
  filter/failures:
    include:
      outcomes: [crashed]
  filter/slow:
    include:
      min_duration: soon
exporters:
  debug: {}
service:
  pipelines:
    logs:
      receivers: [taskstats]
      processors: [filter/failures, filter/slow]
      exporters: [debug]
`,
  );
  const r = await runCli(['validate', '--config', file]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /events\.yaml:4:\d+: receivers\.taskstats\.events\.successes_per_second: must be a number of events per second \(0 or more\) or "unlimited" \(got "lots"\)/,
  );
  assert.match(
    r.stderr,
    /events\.yaml:9:\d+: processors\.filter\/failures\.include\.outcomes\[0\]: must be one of "non_zero_exit_code", "killed_by_signal", "core_dumped"/,
  );
  assert.match(r.stderr, /events\.yaml:12:\d+: processors\.filter\/slow\.include\.min_duration: invalid duration "soon"/);
  const good = tmp.write(
    'good-events.yaml',
    readFileSync(file, 'utf8').replace('successes_per_second: lots', 'successes_per_second: 0').replace('[crashed]', '[core_dumped]').replace('soon', '2s'),
  );
  const ok = await runCli(['validate', '--config', good]);
  assert.equal(ok.code, 0, ok.stderr);
});
