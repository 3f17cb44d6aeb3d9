/**
 * Route parameters arrive percent-encoded (itty-router does not decode them). Decode once, here, and
 * answer 400 for anything that is not a valid id, so handlers only ever see clean values.
 */
import { badRequest } from "../errors";
import { MAX_ID_LENGTH, isValidId } from "../ids";

export function idParam(raw: string | undefined, name: string): string {
  let value: string;
  try {
    value = decodeURIComponent(raw ?? "");
  } catch {
    throw badRequest(`invalid_${name}`, `The ${name.replace(/_/g, " ")} in the path is not valid percent-encoding.`);
  }
  if (!isValidId(value)) {
    throw badRequest(
      `invalid_${name}`,
      `The ${name.replace(/_/g, " ")} must be 1 to ${MAX_ID_LENGTH} characters with no control characters.`,
    );
  }
  return value;
}

/** An optional id in the query string (e.g. `?agent_id=`): null when absent or empty, 400 when not a valid id. */
export function optionalIdQuery(url: URL, name: string): string | null {
  const value = url.searchParams.get(name);
  if (value === null || value === "") return null;
  if (!isValidId(value)) {
    throw badRequest(`invalid_${name}`, `The ${name.replace(/_/g, " ")} must be 1 to ${MAX_ID_LENGTH} characters with no control characters.`);
  }
  return value;
}
