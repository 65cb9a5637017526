// Checks the environment a manifest gives each vplane container against what that service
// reads: the options it declares (the same specs its --help prints and its config loader parses),
// plus the entry point's own variable naming the service (or, for a program the container runs by
// its command, that program's options). Nothing here lists variables by hand.
import { gatewayOptionsSpec, hostAgentOptionsSpec } from "@vplane/gateway";
import { interruptControllerDescription } from "@vplane/interrupt-controller";
import { iommuDescription } from "@vplane/iommu";
import { migrationDescription } from "@vplane/migration";
import { ConfigError, configSpecOf, loadConfig, type ConfigSpec } from "@vplane/service-kit";
import { SERVICE_VARIABLE, serviceCatalog, type ServiceName } from "../../src/service-catalog.js";
import type { Resource } from "./kustomize-build.js";

/** Each catalogued service's option declarations. */
export const serviceOptionSpecs: Record<ServiceName, ConfigSpec> = {
  "interrupt-controller": configSpecOf(interruptControllerDescription),
  iommu: configSpecOf(iommuDescription),
  migration: configSpecOf(migrationDescription),
  gateway: gatewayOptionsSpec,
};

/** Programs of the image a container runs by its command rather than through the catalog. */
const commandOptionSpecs: Record<string, { name: string; spec: ConfigSpec }> = {
  "/app/services/gateway/dist/src/host-agent.js": { name: "host-agent", spec: hostAgentOptionsSpec },
};

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
}

/** The containers of a workload's pod template (none for other kinds). */
export function containersOf(resource: Resource): Container[] {
  const spec = (
    resource.spec as { template?: { spec?: { containers?: Container[]; initContainers?: Container[] } } }
  )?.template?.spec;
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
}

/** The program a container runs (by its command, or the catalog service its variable names). */
function programOf(container: Container) {
  const program = commandOptionSpecs[container.command?.[1] ?? ""];
  const service = program?.name ?? container.env?.find((v) => v.name === SERVICE_VARIABLE)?.value;
  const spec =
    program?.spec ??
    (serviceCatalog.some((entry) => entry.name === service)
      ? serviceOptionSpecs[service as ServiceName]
      : undefined);
  return { program, service, spec };
}

/**
 * The port a container's service serves Prometheus metrics on: the one its metrics listen
 * address (the service's own `metricsAddress` option, VPLANE_<SERVICE>_METRICS_ADDR) is set to;
 * undefined when the variable is unset or the service has no such option.
 */
export function metricsPortOf(container: Container): number | undefined {
  const variable = programOf(container).spec?.["metricsAddress"]?.env;
  const address = container.env?.find((v) => v.name === variable)?.value;
  const port = address === undefined ? NaN : Number(address.slice(address.lastIndexOf(":") + 1));
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/**
 * Problems with the environment of every vplane container of `resource` (one that sets any
 * VPLANE_ variable): it must name its service; every variable it sets must be one that service
 * reads, or one the container's other variables, command or args use as $(NAME) (Kubernetes'
 * dependent variables); and the values set must pass the service's own option parsing.
 */
export function environmentProblems(resource: Resource): string[] {
  const problems: string[] = [];
  for (const container of containersOf(resource)) {
    const env = container.env ?? [];
    if (!env.some((v) => v.name.startsWith("VPLANE_"))) continue;
    const where = `${resource.kind}/${resource.metadata.name} container ${container.name}`;
    const { program, service, spec } = programOf(container);
    if (!spec) {
      problems.push(`${where}: ${SERVICE_VARIABLE} is '${service}', not a service of the catalog`);
      continue;
    }
    const read = new Set([
      ...(program ? [] : [SERVICE_VARIABLE]),
      ...Object.values(spec).map((option) => option.env),
    ]);
    const usesOf = (text: string) => [...text.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)].map((m) => m[1]!);
    for (const variable of env) {
      const referenced = [
        ...env.filter((other) => other !== variable).flatMap((other) => usesOf(other.value ?? "")),
        ...[...(container.command ?? []), ...(container.args ?? [])].flatMap(usesOf),
      ];
      if (!read.has(variable.name) && !referenced.includes(variable.name))
        problems.push(`${where}: sets ${variable.name}, which ${service} does not read`);
    }
    const literal = Object.fromEntries(
      env.filter((v) => v.value !== undefined && !/\$\(/.test(v.value)).map((v) => [v.name, v.value]),
    );
    try {
      loadConfig(spec, { argv: container.args ?? [], env: literal });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems.map((problem) => `${where}: ${problem}`));
    }
  }
  return problems;
}
