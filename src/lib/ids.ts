/** What an id from the network (user, conversation, agent) may be. Pure. */

export const MAX_ID_LENGTH = 256;

/**
 * User ids are opaque, but they name Durable Objects, D1 rows and appear in URLs: at most 256
 * characters, no control characters and no lone surrogates, so they can be logged, displayed and
 * encoded safely.
 */
export function isValidId(id: string): boolean {
  // A lone surrogate (valid in JSON's "\ud800", not in UTF-8) cannot be percent-encoded into an R2
  // key or stored faithfully as text, so it is refused like a control character.
  // eslint-disable-next-line no-control-regex
  return id.length > 0 && id.length <= MAX_ID_LENGTH && !/[\u0000-\u001f\u007f]|\p{Cs}/u.test(id);
}
