// One load run with autocannon: fixed connection count, a fixed number of requests, 127.0.0.1 only.
import autocannon from "autocannon";

/**
 * Sends `amount` requests over `connections` keep-alive connections. `next()` returns the next
 * request ({ method, path, headers, body }); it is called once per request, so every request can be
 * distinct (unique conversation ids). Returns requests per second (timed here, from the start to the
 * last response: autocannon's own duration is rounded up to its sampling tick) and latency
 * percentiles (ms, 2xx only, as autocannon records them).
 */
export function load({ url, connections, amount, next }) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let last = t0;
    const instance = autocannon(
      {
        url,
        connections,
        amount,
        pipelining: 1,
        timeout: 30,
        sampleInt: 100,
        requests: [{ setupRequest: (req) => ({ ...req, ...next() }) }],
      },
      (err, result) => {
        if (err) return reject(err);
        const completed = result["2xx"] + result.non2xx;
        resolve({
          rps: completed / ((last - t0) / 1000),
          p50: result.latency.p50,
          p99: result.latency.p99,
          ok: result["2xx"],
          failed: result.non2xx + result.errors + result.timeouts,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          seconds: (last - t0) / 1000,
        });
      },
    );
    instance.on("response", () => {
      last = performance.now();
    });
  });
}
