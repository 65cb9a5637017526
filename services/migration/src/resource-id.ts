import { VplaneError } from "@vplane/service-kit";

/** VM and snapshot ids: 1-63 characters, lowercase letters, digits and '-', starting with a letter. */
const ID = /^[a-z][a-z0-9-]{0,62}$/;

export function checkId(value: string, field: string): string {
  if (!ID.test(value)) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "INVALID_ID",
      field,
      message: `${field} "${value}" must be 1-63 lowercase letters, digits or '-', starting with a letter`,
    });
  }
  return value;
}

/** The id in a resource name "{collection}/{id}", checked. */
export function idFromName(name: string, collection: string, field: string): string {
  const prefix = `${collection}/`;
  if (!name.startsWith(prefix)) {
    throw new VplaneError({
      code: "INVALID_ARGUMENT",
      reason: "INVALID_NAME",
      field,
      message: `${field} "${name}" must be of the form ${collection}/{id}`,
    });
  }
  return checkId(name.slice(prefix.length), field);
}
