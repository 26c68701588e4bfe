/**
 * The controller's HTTP endpoint: /metrics (Prometheus), /healthz (liveness), /readyz (readiness).
 *
 * - /healthz answers 200 while the process serves requests. It does not look at the API server: an API outage
 *   is not cured by a restart, and the routes stay in place either way.
 * - /readyz answers 200 once a sync has succeeded (the node's routes match the API as last seen), 503 before.
 *
 * node:http is loaded here, on the controller's path only.
 *
 * @example
 *   const server = await startStatusServer({ host: "127.0.0.1", port: 9808 }, metrics);
 *   server.close();
 */
import type { Server } from "node:http";
import type { ControllerMetrics } from "./metrics.js";

export async function startStatusServer(
  listen: { host: string; port: number },
  metrics: ControllerMetrics,
): Promise<Server> {
  const { createServer } = await import("node:http");
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { "content-type": type, "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "GET only\n");
    switch (path) {
      case "/metrics":
        return send(200, "text/plain; version=0.0.4; charset=utf-8", metrics.render());
      case "/healthz":
      case "/livez":
        return send(200, "text/plain", "ok\n");
      case "/readyz":
        return metrics.ready ? send(200, "text/plain", "ok\n") : send(503, "text/plain", "no successful sync yet\n");
      default:
        return send(404, "text/plain", "not found: /metrics, /healthz, /readyz\n");
    }
  });
  // Scrapes are short; a client that holds a connection open must not hold the controller's memory.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}
