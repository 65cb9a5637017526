// Validates a manifest against the Kubernetes API's OpenAPI schemas, offline, through the
// validators kubernetes-models compiles from them (Kubernetes 1.27; ServiceMonitor from the
// prometheus-operator CRD). Those schemas allow unknown fields, which the API server drops with
// only a warning, so a misspelt field (`readinesProbe`) would pass: this module also reports
// every field the schema does not declare, as `kubectl apply --validate=strict` does. It finds
// them by watching which properties the compiled validator reads: it reads every property its
// schema declares and enumerates the keys of free-form maps (labels, resource limits), so a key
// it neither read nor enumerated is one the schema does not know.
import type { Model } from "@kubernetes-models/base";
import * as monitoringV1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import * as appsV1 from "kubernetes-models/apps/v1";
import * as networkingV1 from "kubernetes-models/networking.k8s.io/v1";
import * as policyV1 from "kubernetes-models/policy/v1";
import * as coreV1 from "kubernetes-models/v1";
import type { Resource } from "./kustomize-build.js";

type ModelClass = { prototype: Model<unknown> };

const GROUPS: Record<string, Record<string, unknown>> = {
  v1: coreV1,
  "apps/v1": appsV1,
  "policy/v1": policyV1,
  "networking.k8s.io/v1": networkingV1,
  "monitoring.coreos.com/v1": monitoringV1,
};

/** Problems of one manifest: schema violations and undeclared fields, each with its JSON path. */
export function manifestProblems(resource: Resource): string[] {
  const model = GROUPS[resource.apiVersion]?.[resource.kind] as ModelClass | undefined;
  const where = `${resource.kind}/${resource.metadata?.name}`;
  if (!model) return [`${where}: no schema for ${resource.apiVersion} ${resource.kind}`];
  const reads = new Set<string>();
  const enumerated = new Set<string>();
  const problems: string[] = [];
  try {
    model.prototype.validate.call(watched(resource, "", reads, enumerated));
  } catch (error) {
    problems.push(`${where}: ${(error as Error).message}`);
  }
  for (const path of undeclared(resource, "", reads, enumerated))
    problems.push(`${where}: unknown field ${path}`);
  return [...problems, ...portNameProblems(resource, where)];
}

/**
 * The API server's rule for container port names, which the OpenAPI schemas do not carry: an
 * IANA service name (at most 15 characters: lower-case letters, digits and inner single hyphens,
 * at least one letter), unique within the pod (a PodMonitor or probe names a port by it).
 */
function portNameProblems(resource: Resource, where: string): string[] {
  const pod = (resource.spec as { template?: { spec?: { containers?: unknown[] } } } | undefined)?.template
    ?.spec as { containers?: Container[]; initContainers?: Container[] } | undefined;
  const names = [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])].flatMap((c) =>
    (c.ports ?? []).flatMap((p) => (p.name === undefined ? [] : [p.name])),
  );
  return names.flatMap((name, i) => [
    ...(/^(?=.*[a-z])(?!.*--)[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/.test(name)
      ? []
      : [`${where}: port name ${name} is not an IANA service name (15 characters at most)`]),
    ...(names.indexOf(name) < i ? [`${where}: port name ${name} is used twice in the pod`] : []),
  ]);
}

interface Container {
  ports?: { name?: string }[];
}

/** A copy of `value` whose objects record the properties read from them and their enumeration. */
function watched(value: unknown, path: string, reads: Set<string>, enumerated: Set<string>): unknown {
  if (Array.isArray(value)) return value.map((item, i) => watched(item, `${path}/${i}`, reads, enumerated));
  if (value === null || typeof value !== "object") return value;
  const copy = Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [key, watched(inner, `${path}/${key}`, reads, enumerated)]),
  );
  return new Proxy(copy, {
    get(target, property, receiver) {
      if (typeof property === "string") reads.add(`${path}/${property}`);
      return Reflect.get(target, property, receiver) as unknown;
    },
    ownKeys(target) {
      enumerated.add(path);
      return Reflect.ownKeys(target);
    },
  });
}

function undeclared(value: unknown, path: string, reads: Set<string>, enumerated: Set<string>): string[] {
  if (Array.isArray(value))
    return value.flatMap((item, i) => undeclared(item, `${path}/${i}`, reads, enumerated));
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([key, inner]) => {
    const at = `${path}/${key}`;
    const here = enumerated.has(path) || reads.has(at) ? [] : [at];
    return [...here, ...undeclared(inner, at, reads, enumerated)];
  });
}
