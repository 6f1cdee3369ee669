/**
 * The independent OTLP receiver of test/support/otlp-decoder.py (the official OpenTelemetry
 * protobuf definitions, decoding strictly), started on loopback for a test: what it decoded, as
 * the OTLP JSON mapping with the proto's field names (`time_unix_nano`, `severity_number`, ...).
 *
 * Needs Debian's /usr/bin/python3 with python3-protobuf and python3-grpcio (apt-get install;
 * .ci/run does), and the definitions from scripts/fetch-otlp-proto.sh (run here when missing).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// Decoded requests as protobuf's MessageToDict renders them (proto field names; int64 as strings;
// enums by name; absent = default). Only the fields the tests read are typed.
export interface DecodedAnyValue {
  string_value?: string;
  int_value?: string;
  double_value?: number;
  bool_value?: boolean;
}
export interface DecodedKeyValue {
  key: string;
  value?: DecodedAnyValue;
}
export interface DecodedLogRecord {
  time_unix_nano?: string;
  observed_time_unix_nano?: string;
  severity_number?: string;
  severity_text?: string;
  body?: DecodedAnyValue;
  event_name?: string;
  attributes?: DecodedKeyValue[];
}
export interface DecodedScope {
  name?: string;
  version?: string;
}
export interface DecodedNumberPoint {
  as_int?: string;
  as_double?: number;
  attributes?: DecodedKeyValue[];
}
export interface DecodedMetric {
  name: string;
  unit?: string;
  sum?: { aggregation_temporality?: string; is_monotonic?: boolean; data_points?: DecodedNumberPoint[] };
  gauge?: { data_points?: DecodedNumberPoint[] };
}
export interface DecodedRequestBody {
  resource_logs?: Array<{ resource?: { attributes?: DecodedKeyValue[] }; scope_logs?: Array<{ scope?: DecodedScope; log_records?: DecodedLogRecord[] }> }>;
  resource_metrics?: Array<{ resource?: { attributes?: DecodedKeyValue[] }; scope_metrics?: Array<{ scope?: DecodedScope; metrics?: DecodedMetric[] }> }>;
}

export interface DecodedRequest {
  protocol: 'http/protobuf' | 'http/json' | 'grpc';
  signal: 'metrics' | 'logs';
  request: DecodedRequestBody;
}

export interface OtlpDecoder {
  /** http://127.0.0.1:PORT (the HTTP protocols; /v1/metrics and /v1/logs). */
  readonly httpUrl: string;
  /** http://127.0.0.1:PORT for grpc. */
  readonly grpcUrl: string;
  readonly requests: DecodedRequest[];
  /** Requests the definitions refused (each a message); a test expects none. */
  readonly errors: string[];
  /** Resolves once `count` requests of `signal` have arrived (rejects after `timeoutMs`). */
  waitFor(signal: 'metrics' | 'logs', count: number, timeoutMs?: number): Promise<DecodedRequest[]>;
  stop(): Promise<void>;
}

const PYTHON = '/usr/bin/python3';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'scripts', 'fetch-otlp-proto.sh'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('otlp-decoder: cannot find the repository root (scripts/fetch-otlp-proto.sh)');
}

/** PYTHONPATH holding opentelemetry.proto, fetching it when missing. */
function protoPath(root: string): string {
  const path = join(root, '.cache', 'otlp-proto', 'usr', 'lib', 'python3', 'dist-packages');
  if (existsSync(join(path, 'opentelemetry', 'proto'))) return path;
  const r = spawnSync('bash', [join(root, 'scripts', 'fetch-otlp-proto.sh')], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`otlp-decoder: scripts/fetch-otlp-proto.sh failed (${r.status}): ${r.stderr}`);
  return path;
}

/** Why the decoder cannot run here, or undefined when it can (for test skips that name the cause). */
export function otlpDecoderMissing(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is missing`;
  const r = spawnSync(PYTHON, ['-c', 'import google.protobuf, grpc'], { encoding: 'utf8' });
  if (r.status !== 0) return 'python3-protobuf and python3-grpcio are not installed (apt-get install python3-protobuf python3-grpcio)';
  return undefined;
}

export async function startOtlpDecoder(): Promise<OtlpDecoder> {
  const root = repoRoot();
  const child: ChildProcess = spawn(PYTHON, [join(root, 'test', 'support', 'otlp-decoder.py')], {
    env: { PATH: '/usr/bin:/bin', PYTHONPATH: protoPath(root), PYTHONDONTWRITEBYTECODE: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const requests: DecodedRequest[] = [];
  const errors: string[] = [];
  const listeners = new Set<() => void>();
  const lines = createInterface({ input: child.stdout! });
  const ports = await new Promise<{ http_port: number; grpc_port: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`otlp-decoder did not start: ${stderr}`)), 15_000);
    child.once('exit', (code) => reject(new Error(`otlp-decoder exited (${code}): ${stderr}`)));
    lines.on('line', (line) => {
      const msg = JSON.parse(line) as { ready?: boolean; http_port: number; grpc_port: number; error?: string } & DecodedRequest;
      if (msg.ready) {
        clearTimeout(timer);
        resolve(msg);
        return;
      }
      if (msg.error) errors.push(msg.error);
      else requests.push({ protocol: msg.protocol, signal: msg.signal, request: msg.request });
      for (const l of listeners) l();
    });
  });
  return {
    httpUrl: `http://127.0.0.1:${ports.http_port}`,
    grpcUrl: `http://127.0.0.1:${ports.grpc_port}`,
    requests,
    errors,
    waitFor(signal, count, timeoutMs = 10_000) {
      const matching = () => requests.filter((r) => r.signal === signal);
      return new Promise((resolve, reject) => {
        const check = () => {
          if (errors.length > 0) done(new Error(`otlp-decoder refused a request: ${errors.join('; ')}`));
          else if (matching().length >= count) done();
        };
        const timer = setTimeout(() => done(new Error(`otlp-decoder: ${matching().length} of ${count} ${signal} requests after ${timeoutMs} ms`)), timeoutMs);
        const done = (err?: Error) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (err) reject(err);
          else resolve(matching());
        };
        listeners.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The log records of decoded logs requests, flattened, with their resource's attributes. */
export function decodedLogRecords(requests: DecodedRequest[]): Array<{ record: DecodedLogRecord; resource: Record<string, unknown>; scope: DecodedScope }> {
  const out: Array<{ record: DecodedLogRecord; resource: Record<string, unknown>; scope: DecodedScope }> = [];
  for (const r of requests) {
    for (const rl of r.request.resource_logs ?? []) {
      const resource = attributesOf(rl.resource?.attributes);
      for (const sl of rl.scope_logs ?? []) for (const record of sl.log_records ?? []) out.push({ record, resource, scope: sl.scope ?? {} });
    }
  }
  return out;
}

/** OTLP KeyValue list -> plain object (int_value stays a string in the JSON mapping, as int64). */
export function attributesOf(list: DecodedKeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    out[kv.key] = v.string_value ?? (v.int_value !== undefined ? Number(v.int_value) : undefined) ?? v.double_value ?? v.bool_value;
  }
  return out;
}
