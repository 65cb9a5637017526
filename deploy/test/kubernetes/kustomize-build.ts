// `kustomize build` for the part of kustomize that deploy/kubernetes uses, so that `npm test`
// renders the manifests offline. Hand-written because no kustomize runs on Node (the real one is
// Go, and the kubectl that embeds it is not something the tests can count on); it is kept small
// by refusing every Kustomization field and patch form it does not implement, by name, so a
// manifest that starts using one fails here rather than rendering differently from kustomize.
// Implemented, as kustomize v5 does them: `resources` (files, or folders holding a
// kustomization.yaml, rendered first), `namespace` (set on every namespaced resource), `images`
// (name -> newName/newTag on every container) and `patches` whose body is an RFC 6902 JSON patch
// (inline or from a file) with a target of kind and name, applied in order after the resources.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fastJsonPatch from "fast-json-patch";
import { parseAllDocuments } from "yaml";

export interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

type Operation = fastJsonPatch.Operation;

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  resources?: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
  patches?: { path?: string; patch?: string; target?: { kind?: string; name?: string } }[];
}

const SUPPORTED_FIELDS = new Set(["apiVersion", "kind", "namespace", "resources", "images", "patches"]);

// Whether each kind this renderer may meet is namespaced (kustomize's namespace transformer
// leaves cluster-scoped kinds alone). An unknown kind is refused rather than guessed.
const NAMESPACED: Record<string, boolean> = {
  Namespace: false,
  Service: true,
  Secret: true,
  ConfigMap: true,
  ServiceAccount: true,
  Deployment: true,
  DaemonSet: true,
  StatefulSet: true,
  PodDisruptionBudget: true,
  NetworkPolicy: true,
  ServiceMonitor: true,
  PodMonitor: true,
};

export class KustomizeError extends Error {
  override name = "KustomizeError";
}

/** The resources `kustomize build <folder>` prints, in resource order. */
export function kustomizeBuild(folder: string): Resource[] {
  const file = join(folder, "kustomization.yaml");
  if (!existsSync(file)) throw new KustomizeError(`${folder}: no kustomization.yaml`);
  const kustomization = parseYaml(file)[0] as Kustomization;
  for (const field of Object.keys(kustomization)) {
    if (!SUPPORTED_FIELDS.has(field))
      throw new KustomizeError(`${file}: field '${field}' is not implemented by this renderer`);
  }
  if (kustomization.kind !== "Kustomization")
    throw new KustomizeError(`${file}: kind must be Kustomization, found ${String(kustomization.kind)}`);

  let resources: Resource[] = [];
  for (const entry of kustomization.resources ?? []) {
    const path = resolve(folder, entry);
    resources.push(
      ...(statSync(path).isDirectory() ? kustomizeBuild(path) : (parseYaml(path) as Resource[])),
    );
  }
  for (const resource of resources) {
    if (!(resource.kind in NAMESPACED))
      throw new KustomizeError(
        `kind ${resource.kind} (${resource.metadata?.name}): scope unknown to this renderer`,
      );
  }
  if (kustomization.namespace) {
    for (const resource of resources) {
      if (NAMESPACED[resource.kind]) resource.metadata.namespace = kustomization.namespace;
    }
  }
  for (const image of kustomization.images ?? []) {
    for (const resource of resources) renameImage(resource, image);
  }
  for (const [index, patch] of (kustomization.patches ?? []).entries()) {
    resources = resources.map((resource) =>
      applyPatch(resource, patch, `${file}: patches[${index}]`, folder),
    );
  }
  return resources;
}

function parseYaml(path: string): unknown[] {
  const documents = parseAllDocuments(readFileSync(path, "utf8"));
  if (!Array.isArray(documents)) throw new KustomizeError(`${path}: empty`);
  return documents
    .map((document) => {
      if (document.errors.length > 0) throw new KustomizeError(`${path}: ${document.errors[0]!.message}`);
      return document.toJS() as unknown;
    })
    .filter((value) => value !== null);
}

function applyPatch(
  resource: Resource,
  patch: NonNullable<Kustomization["patches"]>[number],
  where: string,
  folder: string,
): Resource {
  const target = patch.target ?? {};
  for (const key of Object.keys(target)) {
    if (key !== "kind" && key !== "name")
      throw new KustomizeError(`${where}: target.${key} is not implemented by this renderer`);
  }
  if (
    (target.kind && target.kind !== resource.kind) ||
    (target.name && target.name !== resource.metadata.name)
  )
    return resource;
  const text = patch.path ? readFileSync(join(folder, patch.path), "utf8") : patch.patch;
  if (text === undefined) throw new KustomizeError(`${where}: neither path nor patch`);
  const operations = parseAllDocuments(text);
  const body = (Array.isArray(operations) ? operations[0]?.toJS() : undefined) as unknown;
  // A mapping would be a strategic-merge patch, which this renderer does not implement.
  if (!Array.isArray(body))
    throw new KustomizeError(`${where}: only RFC 6902 (list) patches are implemented`);
  try {
    return fastJsonPatch.applyPatch(structuredClone(resource), body as Operation[], true, false).newDocument;
  } catch (error) {
    throw new KustomizeError(
      `${where} on ${resource.kind}/${resource.metadata.name}: ${(error as Error).message.split("\n")[0]}`,
    );
  }
}

/** kustomize's image transformer: `name[:tag]` becomes `newName[:newTag]` in every container. */
function renameImage(resource: Resource, image: NonNullable<Kustomization["images"]>[number]): void {
  const podSpec = (resource.spec as { template?: { spec?: Record<string, unknown> } } | undefined)?.template
    ?.spec;
  if (!podSpec) return;
  for (const list of ["initContainers", "containers"]) {
    for (const container of (podSpec[list] as { image?: string }[] | undefined) ?? []) {
      if (!container.image) continue;
      const match = /^([^:@]+(?::\d+\/[^:@]+)?)(?::([^@]+))?(@.+)?$/.exec(container.image);
      if (!match || match[1] !== image.name) continue;
      const name = image.newName ?? match[1];
      const tag = image.newTag ?? match[2];
      container.image = `${name}${tag ? `:${tag}` : ""}${image.newTag ? "" : (match[3] ?? "")}`;
    }
  }
}

/** The folder of this repository's Kubernetes manifests. */
export const kubernetesRoot = fileURLToPath(new URL("../../../kubernetes", import.meta.url));
