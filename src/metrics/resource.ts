/**
 * The agent's OpenTelemetry resource: who is reporting (not what is measured: processes are
 * data-point attributes).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Attributes as OtelAttributes } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';

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
  return new AgentResource(attributes);
}

type RawResourceAttribute = ReturnType<Resource['getRawAttributes']>[number];

/**
 * A `Resource` (the interface exporters read: `attributes`, `schemaUrl`) holding plain string
 * attributes known at start. Not @opentelemetry/resources' `resourceFromAttributes`: that package
 * (with @opentelemetry/core and api, and a second copy of each when an exporter brings its own
 * version) would be loaded by every agent only for this object.
 */
export class AgentResource implements Resource {
  readonly asyncAttributesPending = false;
  readonly attributes: Readonly<OtelAttributes>;

  constructor(
    attributes: OtelAttributes,
    readonly schemaUrl?: string,
  ) {
    this.attributes = Object.freeze({ ...attributes });
  }

  async waitForAsyncAttributes(): Promise<void> {}

  getRawAttributes(): RawResourceAttribute[] {
    return Object.entries(this.attributes);
  }

  /** As the SDK's merge: `other`'s attributes win; a schema URL is kept unless the two conflict. */
  merge(other: Resource | null): Resource {
    if (other == null) return this;
    const merged: OtelAttributes = { ...this.attributes };
    for (const [key, value] of other.getRawAttributes()) {
      // Unsettled (promise) values are skipped, as the SDK's `attributes` does.
      if (value !== undefined && value !== null && typeof (value as { then?: unknown }).then !== 'function') merged[key] = value;
    }
    const mine = this.schemaUrl || undefined;
    const theirs = other.schemaUrl || undefined;
    return new AgentResource(merged, mine === undefined ? theirs : theirs === undefined || theirs === mine ? mine : undefined);
  }
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
