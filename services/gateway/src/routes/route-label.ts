/**
 * A fastify route URL as the OpenAPI document writes its path, for metric labels and logs:
 * parameters as {name}, without their regular expressions, and fastify's escaped colon (::) as
 * the literal colon of a custom method ("/v1/vms/:vm(^[^/:]+)::migrate" -> "/v1/vms/{vm}:migrate").
 */
export function routeLabel(url: string): string {
  return url
    .replace(/\((?:\\.|[^)\\])*\)/g, "")
    .replace(/::/g, "\0")
    .replace(/:(\w+)/g, "{$1}")
    .replace(/\0/g, ":");
}
