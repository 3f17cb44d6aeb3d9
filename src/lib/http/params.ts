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
