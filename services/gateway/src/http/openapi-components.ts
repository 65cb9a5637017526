type Json = unknown;
type SchemaObject = Record<string, Json>;

/**
 * Moves every schema object with a title into components.schemas under that title and refers to
 * it with $ref, so that client generators name the types (Vm, Operation, Error,
 * TriggerSourcesRequest, ...) instead of inventing one per use. The routes keep their schemas
 * inline, as the validator compiles them; only the document is rewritten (fastify-swagger's
 * transformObject). Two different schemas under one title are a mistake: refused, naming it.
 */
export function hoistTitledSchemas<
  T extends { paths?: Json; components?: { schemas?: Record<string, Json> } },
>(document: T): T {
  const named = new Map<string, { schema: SchemaObject; text: string }>();
  const visit = (value: Json): Json => {
    if (Array.isArray(value)) return value.map(visit);
    if (value === null || typeof value !== "object") return value;
    const object = Object.fromEntries(
      Object.entries(value as SchemaObject).map(([key, child]) => [key, visit(child)]),
    );
    const title = object["title"];
    if (typeof title !== "string" || !("type" in object)) return object;
    const text = JSON.stringify(object);
    const earlier = named.get(title);
    if (earlier && earlier.text !== text)
      throw new Error(`two different OpenAPI schemas are titled ${title}`);
    named.set(title, { schema: object, text });
    return { $ref: `#/components/schemas/${title}` };
  };
  const paths = visit(document.paths);
  const schemas = { ...(document.components?.schemas ?? {}) };
  for (const [title, { schema }] of named) schemas[title] = schema;
  return { ...document, paths, components: { ...document.components, schemas } };
}
