/**
 * Baseline 1: the bare runtime. Answers every request with a fixed body and touches nothing else,
 * so its requests per second are the ceiling for any Worker on this machine in the same run.
 */
export default {
  fetch: () => new Response("Hello World!"),
} satisfies ExportedHandler;
