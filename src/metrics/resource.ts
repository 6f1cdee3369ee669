/**
 * The agent's OpenTelemetry resource: who is reporting (not what is measured: processes are
 * data-point attributes).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';

export const DEFAULT_SERVICE_NAME = 'taskstats-agent';

/**
 * Attributes, later ones winning:
 *  1. service.name `taskstats-agent`, service.version (package.json), host.name (os.hostname()),
 *     k8s.node.name from K8S_NODE_NAME when set (the Helm chart sets it from spec.nodeName),
 *     telemetry.sdk.* like the OpenTelemetry SDK's default resource;
 *  2. OTEL_RESOURCE_ATTRIBUTES (`key=value,key2=value2`, percent-encoded), as the spec says:
 *     when any entry is malformed the whole variable is ignored, and `warn` is told why;
 *  3. OTEL_SERVICE_NAME for service.name.
 */
export function buildResource(env: NodeJS.ProcessEnv = process.env, warn?: (message: string) => void): Resource {
  const attributes: Record<string, string> = {
    'service.name': DEFAULT_SERVICE_NAME,
    'host.name': hostname(),
    'telemetry.sdk.name': 'opentelemetry',
    'telemetry.sdk.language': 'nodejs',
  };
  const sdkVersion = packageVersion('@opentelemetry/sdk-metrics');
  if (sdkVersion) attributes['telemetry.sdk.version'] = sdkVersion;
  const version = agentVersion();
  if (version) attributes['service.version'] = version;
  const node = env.K8S_NODE_NAME?.trim();
  if (node) attributes['k8s.node.name'] = node;

  const raw = env.OTEL_RESOURCE_ATTRIBUTES;
  if (raw !== undefined && raw.trim() !== '') {
    try {
      Object.assign(attributes, parseResourceAttributes(raw));
    } catch (err) {
      warn?.(`OTEL_RESOURCE_ATTRIBUTES ignored: ${(err as Error).message}`);
    }
  }
  const serviceName = env.OTEL_SERVICE_NAME?.trim();
  if (serviceName) attributes['service.name'] = serviceName;
  return resourceFromAttributes(attributes);
}

/**
 * Parse OTEL_RESOURCE_ATTRIBUTES: comma-separated `key=value` pairs, `,` `=` `%` percent-encoded
 * in keys and values, surrounding blanks trimmed. Throws an Error naming the bad entry.
 */
export function parseResourceAttributes(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of raw.split(',')) {
    if (entry.trim() === '') continue;
    const eq = entry.indexOf('=');
    if (eq < 0 || entry.indexOf('=', eq + 1) >= 0) {
      throw new Error(`entry "${entry}" is not key=value (encode "," and "=" as %2C and %3D)`);
    }
    const rawKey = entry.slice(0, eq).trim();
    const rawValue = entry.slice(eq + 1).trim();
    if (rawKey === '') throw new Error(`entry "${entry}" has an empty key`);
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(rawKey);
      value = decodeURIComponent(rawValue);
    } catch {
      throw new Error(`entry "${entry}" has an invalid percent-encoding`);
    }
    out[key] = value;
  }
  return out;
}

let cachedAgentVersion: string | null | undefined;
/** Version from the agent's package.json (found upwards from this file: src/ or dist/src/). */
function agentVersion(): string | null {
  if (cachedAgentVersion !== undefined) return cachedAgentVersion;
  cachedAgentVersion = null;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'taskstats-agent') {
        cachedAgentVersion = pkg.version ?? null;
        break;
      }
    } catch {
      // not here: go up
    }
    dir = dirname(dir);
  }
  return cachedAgentVersion;
}

function packageVersion(name: string): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      return (JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      dir = dirname(dir);
    }
  }
  return null;
}
