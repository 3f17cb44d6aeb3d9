/**
 * GET /v1/users/:userId/context: a user's dynamic variables for their next conversation.
 */
import type { Env } from "../lib/env";
import { json } from "../lib/errors";
import { dynamicVariablesFor } from "../memory/context";

/** `agentId` (`?agent_id=`): which agent's memory, when MEMORY_SCOPE="agent". */
export async function getContext(env: Env, userId: string, agentId: string | null = null): Promise<Response> {
  return json({ user_id: userId, dynamic_variables: await dynamicVariablesFor(env, userId, Date.now(), agentId) });
}
