/**
 * The two-object phone-link protocol the API runs (a user's object holds the reverse index, the
 * number's object the truth: src/objects/user-memory/phone-links.ts). Worker side: stubs only.
 */
import type { Env } from "../lib/env";
import { ApiError } from "../lib/errors";
import { userObjectName } from "../records/object-names";
import { contextCache } from "./context-cache";
import { phoneObject, userObject } from "./objects";

/**
 * PUT /v1/users/:userId/phones/:phoneNumber: the user's list first, then the number's owner (the
 * truth), so erasing the user always finds it. Throws 409 when a newer change of the number's link
 * was recorded meanwhile.
 */
export async function linkPhone(env: Env, userId: string, phone: string, now: number): Promise<void> {
  const user = userObject(env, userId);
  const number = phoneObject(env, phone);
  await user.addPhone(phone, now, "api");
  const res = await number.setOwner({ phoneNumber: phone, userId, at: now, via: "api", conversationId: null });
  if (res.owner !== userId) {
    await user.removePhone(phone, now);
    throw new ApiError(409, "phone_link_conflict", "A newer change to this number's link was recorded meanwhile; read the memory and retry.");
  }
  // Tell a displaced owner now rather than at the next alarm, so the answer is settled when it returns.
  await number.flush();
  contextCache.forget(userObjectName(phone));
}

/** DELETE /v1/users/:userId/phones/:phoneNumber: the truth first, then the user's list. Safe to repeat. */
export async function unlinkPhone(env: Env, userId: string, phone: string, now: number): Promise<boolean> {
  const a = await phoneObject(env, phone).clearOwner(userId, now, "api");
  const b = await userObject(env, userId).removePhone(phone, now);
  contextCache.forget(userObjectName(phone));
  return a.removed || b.removed;
}
