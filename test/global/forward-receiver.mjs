// globalSetup of the forwarding project (vitest.config.ts), run in Node: a real HTTP receiver on
// 127.0.0.1 that verifies every delivery with the `standardwebhooks` package
// (scripts/lib/forward-receiver.mjs). Tests reach it through the FORWARD_RECEIVER_URL binding: its
// control endpoints list what arrived and set how each destination answers.
import { startReceiver } from "../../scripts/lib/forward-receiver.mjs";

export default async function setup() {
  const port = Number(process.env.POSTCALL_TEST_RECEIVER_PORT);
  const secrets = (process.env.POSTCALL_TEST_FORWARD_SECRETS ?? "").split(",");
  const receiver = await startReceiver({ port, secrets });
  return () => receiver.close();
}
