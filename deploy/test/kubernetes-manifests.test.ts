// deploy/kubernetes, checked offline: rendered as kustomize renders them, every manifest valid
// for the Kubernetes API (no undeclared field either), every variable a vplane container sets
// read by its service, and the shape the fleet needs (replicas, probes, budgets, devices, Secrets).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseStoreUrl } from "@vplane/store";
import { kubernetesRoot, kustomizeBuild, type Resource } from "./kubernetes/kustomize-build.js";
import { manifestProblems } from "./kubernetes/manifest-schema.js";
import { containersOf, environmentProblems, metricsPortOf } from "./kubernetes/service-environment.js";

const FOLDERS = ["base", "overlays/tls"];
const rendered = new Map(FOLDERS.map((folder) => [folder, kustomizeBuild(join(kubernetesRoot, folder))]));

function find(
  resources: Resource[],
  kind: string,
  name: string,
): Resource & { spec: Record<string, unknown> } {
  const found = resources.find((r) => r.kind === kind && r.metadata.name === name);
  assert.ok(found, `${kind}/${name} is rendered`);
  return found as Resource & { spec: Record<string, unknown> };
}

interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: {
    nodeSelector?: Record<string, string>;
    containers: {
      name: string;
      command?: string[];
      env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
      ports?: { name?: string; containerPort: number; hostPort?: number }[];
      readinessProbe?: { httpGet?: { path: string; port: string | number; scheme?: string } };
      volumeMounts?: { name: string; mountPath: string }[];
    }[];
    volumes?: { name: string; hostPath?: { path: string }; secret?: { secretName: string } }[];
  };
}
const podTemplate = (resource: Resource) => (resource.spec as { template: PodTemplate }).template;
const envOf = (container: PodTemplate["spec"]["containers"][number]) =>
  Object.fromEntries((container.env ?? []).map((v) => [v.name, v.value]));
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);

/**
 * What is wrong with a PodMonitor: it must select pods that exist, and each endpoint must name a
 * port of those pods on which that container's service listens for metrics (its
 * VPLANE_<SERVICE>_METRICS_ADDR).
 */
const podMonitorProblems = (resources: Resource[]) => (monitor: Resource) => {
  const where = `PodMonitor/${monitor.metadata.name}`;
  const { selector, podMetricsEndpoints } = monitor.spec as {
    selector: { matchLabels: Record<string, string> };
    podMetricsEndpoints: { port: string; path: string }[];
  };
  const pods = resources.filter(
    (r) => containersOf(r).length > 0 && matches(selector.matchLabels, podTemplate(r).metadata.labels),
  );
  if (pods.length === 0) return [`${where}: selects no pods`];
  const containers = pods.flatMap(containersOf);
  return podMetricsEndpoints.flatMap((endpoint) => {
    const container = containers.find((c) => c.ports?.some((p) => p.name === endpoint.port));
    const port = container?.ports?.find((p) => p.name === endpoint.port);
    if (!container || !port) return [`${where}: no container port named ${endpoint.port}`];
    const problems: string[] = [];
    if (endpoint.path !== "/metrics") problems.push(`${where}: ${endpoint.port} path ${endpoint.path}`);
    if (metricsPortOf(container) !== port.containerPort)
      problems.push(
        `${where}: ${container.name} serves no metrics on ${endpoint.port} (${port.containerPort})`,
      );
    return problems;
  });
};

describe("Kubernetes manifests (deploy/kubernetes)", () => {
  for (const folder of FOLDERS) {
    it(`${folder}: every manifest validates against the Kubernetes schemas, with no undeclared field`, () => {
      const resources = rendered.get(folder)!;
      assert.ok(resources.length >= 10, `${resources.length} resources`);
      assert.deepEqual(resources.flatMap(manifestProblems), []);
      const namespaced = resources.filter((r) => r.kind !== "Namespace");
      assert.ok(namespaced.every((r) => r.metadata.namespace === "vplane"));
    });

    it(`${folder}: every variable a vplane container sets is read by its service, with a value it accepts`, () => {
      assert.deepEqual(rendered.get(folder)!.flatMap(environmentProblems), []);
    });

    it(`${folder}: every Service, PodDisruptionBudget and ServiceMonitor selects pods or a Service that exist`, () => {
      const resources = rendered.get(folder)!;
      const pods = resources
        .filter((r) => containersOf(r).length > 0)
        .map((r) => podTemplate(r).metadata.labels);
      for (const r of resources) {
        const spec = r.spec as { selector?: Record<string, unknown> } | undefined;
        if (r.kind === "Service")
          assert.ok(
            pods.some((labels) => matches(spec!.selector as Record<string, string>, labels)),
            r.metadata.name,
          );
        if (r.kind === "PodDisruptionBudget") {
          const selector = (spec!.selector as { matchLabels: Record<string, string> }).matchLabels;
          assert.ok(
            pods.some((labels) => matches(selector, labels)),
            r.metadata.name,
          );
        }
      }
      const monitor = find(resources, "ServiceMonitor", "vplane-gateway");
      const { selector, endpoints } = monitor.spec as {
        selector: { matchLabels: Record<string, string> };
        endpoints: { port: string; path: string }[];
      };
      const service = resources.find(
        (r) =>
          r.kind === "Service" && matches(selector.matchLabels, r.metadata.labels as Record<string, string>),
      );
      assert.ok(service, "the ServiceMonitor selects a Service");
      const ports = (service.spec as { ports: { name: string }[] }).ports.map((p) => p.name);
      assert.ok(endpoints.every((e) => ports.includes(e.port) && e.path === "/metrics"));
    });

    it(`${folder}: every metrics endpoint a PodMonitor scrapes is a port its service serves /metrics on`, () => {
      const resources = rendered.get(folder)!;
      const monitors = resources.filter((r) => r.kind === "PodMonitor");
      assert.deepEqual(monitors.flatMap(podMonitorProblems(resources)), []);
      // Every service that can export metrics does, and a PodMonitor scrapes it: the three host
      // services (the gateway serves /metrics on its HTTP port, scraped by its ServiceMonitor).
      const scraped = new Set(
        monitors.flatMap((m) =>
          (m.spec as { podMetricsEndpoints: { port: string }[] }).podMetricsEndpoints.map((e) => e.port),
        ),
      );
      const exporters = resources
        .flatMap(containersOf)
        .filter((c) => metricsPortOf(c) !== undefined)
        .map((c) => c.name);
      assert.deepEqual(exporters, ["interrupt-controller", "iommu", "migration"]);
      for (const container of resources.flatMap(containersOf)) {
        const port = metricsPortOf(container);
        if (port === undefined) continue;
        const named = container.ports?.find((p) => p.containerPort === port)?.name;
        assert.ok(named && scraped.has(named), `${container.name}: metrics port ${port} is scraped`);
      }
    });
  }

  it("the gateway: a Deployment of 3 replicas, ready on /readyz, kept at 2 by a PodDisruptionBudget", () => {
    const resources = rendered.get("base")!;
    const gateway = find(resources, "Deployment", "vplane-gateway");
    assert.equal(gateway.spec.replicas, 3);
    const container = podTemplate(gateway).spec.containers[0]!;
    assert.equal(container.readinessProbe?.httpGet?.path, "/readyz");
    assert.ok(container.ports?.some((p) => p.name === container.readinessProbe?.httpGet?.port));
    const budget = find(resources, "PodDisruptionBudget", "vplane-gateway");
    assert.equal(budget.spec.minAvailable, 2);
  });

  it("the registry URL names every member of the etcd StatefulSet", () => {
    const resources = rendered.get("base")!;
    const etcd = find(resources, "StatefulSet", "vplane-etcd");
    const members = Array.from(
      { length: etcd.spec.replicas as number },
      (_, i) => `http://vplane-etcd-${i}.${etcd.spec.serviceName as string}:2379`,
    );
    const gateway = podTemplate(find(resources, "Deployment", "vplane-gateway")).spec.containers[0]!;
    const location = parseStoreUrl(envOf(gateway)["VPLANE_REGISTRY_URL"]!);
    assert.equal(location.kind, "etcd");
    assert.deepEqual(location.kind === "etcd" && location.endpoints, members);
    assert.equal(members.length, 3);
  });

  it("etcd compacts its history: the registry reads only latest values, and an uncompacted history fills the quota", () => {
    const etcd = find(rendered.get("base")!, "StatefulSet", "vplane-etcd");
    const command = podTemplate(etcd).spec.containers[0]!.command ?? [];
    assert.ok(command.includes("--auto-compaction-mode=periodic"), command.join(" "));
    const retention = command.find((arg) => arg.startsWith("--auto-compaction-retention="));
    assert.match(retention ?? "", /^--auto-compaction-retention=[1-9][0-9]*[smh]$/);
  });

  it("the host services: a DaemonSet on labelled nodes with the native devices, guest RAM and the VMM socket folder", () => {
    const host = find(rendered.get("base")!, "DaemonSet", "vplane-host");
    const { spec } = podTemplate(host);
    assert.deepEqual(spec.nodeSelector, { "vplane.dev/host": "true" });
    assert.deepEqual(
      spec.containers.map((c) => envOf(c)["VPLANE_SERVICE"]),
      ["interrupt-controller", "iommu", "migration", undefined],
    );
    // The fourth is the host agent: it joins the fleet as this node with the node's credential.
    const agent = spec.containers[3]! as (typeof spec.containers)[number] & { command: string[] };
    assert.equal(agent.command[1], "/app/services/gateway/dist/src/host-agent.js");
    assert.deepEqual(
      agent.env!.filter((v) => v.valueFrom).map((v) => [v.name, v.valueFrom!.fieldRef!.fieldPath]),
      [
        ["VPLANE_HOST_NAME", "spec.nodeName"],
        ["VPLANE_HOST_ADVERTISE_HOST", "status.hostIP"],
      ],
    );
    const hostPaths = new Map(spec.volumes!.filter((v) => v.hostPath).map((v) => [v.name, v.hostPath!.path]));
    const mounted = (container: string) =>
      spec.containers
        .find((c) => c.name === container)!
        .volumeMounts!.map((m) => hostPaths.get(m.name))
        .filter(Boolean);
    assert.ok(mounted("interrupt-controller").includes("/dev/kvm"));
    for (const device of ["/dev/iommu", "/dev/vfio"]) assert.ok(mounted("iommu").includes(device), device);
    for (const container of ["interrupt-controller", "iommu", "migration"]) {
      assert.ok(mounted(container).includes("/var/lib/vplane/guest-ram"), `${container}: guest RAM`);
    }
    for (const container of ["interrupt-controller", "iommu"]) {
      assert.ok(mounted(container).includes("/run/vplane"), `${container}: VMM socket folder`);
    }
    // The handoff socket the interrupt-controller opens is in that folder.
    const socket = envOf(spec.containers[0]!)["VPLANE_INTERRUPT_HANDOFF_SOCKET"];
    assert.match(socket ?? "", /^\/run\/vplane\/[^/]+\.sock$/);
    // Each service is reached at the node's address on its own port.
    assert.deepEqual(
      spec.containers.map((c) => c.ports?.[0]?.hostPort),
      [50051, 50052, 50053, undefined],
    );
  });

  it("tokens and certificates come from Secrets, each one documented in docs/kubernetes.md", () => {
    const docs = readFileSync(join(kubernetesRoot, "../../docs/kubernetes.md"), "utf8");
    const secrets = new Set(
      [...rendered.values()]
        .flat()
        .flatMap((r) => (containersOf(r).length > 0 ? (podTemplate(r).spec.volumes ?? []) : []))
        .flatMap((v) => (v.secret ? [v.secret.secretName] : [])),
    );
    assert.deepEqual([...secrets].sort(), [
      "vplane-gateway-client-tls",
      "vplane-gateway-tls",
      "vplane-host-credentials",
      "vplane-host-tls",
      "vplane-tokens",
    ]);
    for (const secret of secrets) assert.ok(docs.includes(secret), `${secret} is documented`);
  });

  it("overlays/tls: HTTPS on the REST API and its probes, mutual TLS to and between the host services", () => {
    const resources = rendered.get("overlays/tls")!;
    const gateway = podTemplate(find(resources, "Deployment", "vplane-gateway")).spec.containers[0]!;
    assert.equal(gateway.readinessProbe?.httpGet?.scheme, "HTTPS");
    for (const variable of [
      "VPLANE_GATEWAY_TLS_CERT",
      "VPLANE_GATEWAY_TLS_KEY",
      "VPLANE_SERVICE_TLS_CA",
      "VPLANE_SERVICE_TLS_CERT",
      "VPLANE_SERVICE_TLS_KEY",
    ])
      assert.ok(envOf(gateway)[variable], variable);
    const [interrupt, iommu, migration, agent] = podTemplate(find(resources, "DaemonSet", "vplane-host")).spec
      .containers;
    for (const container of [interrupt!, iommu!, migration!]) {
      for (const variable of ["VPLANE_TLS_CERT", "VPLANE_TLS_KEY", "VPLANE_TLS_CLIENT_CA"])
        assert.ok(envOf(container)[variable], `${container.name}: ${variable}`);
    }
    assert.match(envOf(agent!)["VPLANE_HOST_GATEWAY_URLS"]!, /^https:/);
    for (const variable of ["VPLANE_HOST_GATEWAY_CA", "VPLANE_SERVICE_TLS_CA", "VPLANE_SERVICE_TLS_CERT"])
      assert.ok(envOf(agent!)[variable], `host-agent: ${variable}`);
    const monitor = find(resources, "ServiceMonitor", "vplane-gateway");
    assert.equal((monitor.spec.endpoints as { scheme?: string }[])[0]!.scheme, "https");
  });

  it("the checks can fail: a misspelt field, a wrong type, a bad port name and an unread variable are reported", () => {
    const gateway = structuredClone(find(rendered.get("base")!, "Deployment", "vplane-gateway"));
    gateway.spec.replicas = "3";
    const container = podTemplate(gateway).spec.containers[0]! as Record<string, unknown> & {
      env: { name: string; value: string }[];
    };
    container["readinesProbe"] = container["readinessProbe"];
    container.env.push({ name: "VPLANE_GATEWAY_REPLICAS", value: "3" });
    container.env.push({ name: "VPLANE_GATEWAY_RATE_LIMIT", value: "fast" });
    const ports = container["ports"] as { name: string; containerPort: number }[];
    ports.push({ name: "gateway-metrics-http", containerPort: 9100 }, { name: "http", containerPort: 8081 });
    const problems = manifestProblems(gateway);
    assert.ok(
      problems.some((p) => p.includes("/spec/replicas must be integer")),
      problems.join("\n"),
    );
    assert.ok(
      problems.some((p) => p.includes("unknown field /spec/template/spec/containers/0/readinesProbe")),
    );
    assert.ok(problems.some((p) => p.includes("port name gateway-metrics-http is not an IANA service name")));
    assert.ok(problems.some((p) => p.includes("port name http is used twice in the pod")));
    const environment = environmentProblems(gateway);
    assert.ok(
      environment.some((p) => p.includes("sets VPLANE_GATEWAY_REPLICAS, which gateway does not read")),
    );
    assert.ok(environment.some((p) => p.includes("VPLANE_GATEWAY_RATE_LIMIT / --rate-limit: 'fast'")));
  });

  it("the checks can fail: a misspelt metrics variable is unread, and leaves the PodMonitor's port without metrics", () => {
    const resources = structuredClone(rendered.get("base")!);
    const host = find(resources, "DaemonSet", "vplane-host");
    const iommu = podTemplate(host).spec.containers[1]!;
    const variable = iommu.env!.find((v) => v.name === "VPLANE_IOMMU_METRICS_ADDR")!;
    variable.name = "VPLANE_IOMMU_METRIC_ADDR";
    assert.ok(
      environmentProblems(host).some((p) =>
        p.includes("sets VPLANE_IOMMU_METRIC_ADDR, which iommu does not read"),
      ),
    );
    const monitor = find(resources, "PodMonitor", "vplane-host");
    assert.deepEqual(podMonitorProblems(resources)(monitor), [
      "PodMonitor/vplane-host: iommu serves no metrics on iommu-metrics (9152)",
    ]);
    (monitor.spec.podMetricsEndpoints as { port: string }[])[0]!.port = "interrupt-metrics";
    assert.ok(
      podMonitorProblems(resources)(monitor).includes(
        "PodMonitor/vplane-host: no container port named interrupt-metrics",
      ),
    );
  });

  it("the renderer refuses a Kustomization field it does not implement, rather than ignoring it", () => {
    const folder = mkdtempSync(join(tmpdir(), "vplane-kustomize-"));
    try {
      writeFileSync(
        join(folder, "kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\ncommonLabels: { a: b }\n",
      );
      assert.throws(() => kustomizeBuild(folder), /field 'commonLabels' is not implemented/);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
