/**
 * A listening TCP socket inside a network namespace, served by this process. A socket belongs to the namespace
 * it was created in, so a short child (`nsenter --net=NS node -e ...`) creates it there and hands it over
 * through the IPC channel; this process then accepts connections on it that arrive inside the namespace, without
 * touching the machine's own namespace and without a long-running helper.
 *
 * @example
 *   const handle = await listenInNetns("/var/run/netns/lab-api", "172.31.250.250", 6443);
 *   http.createServer(app).listen(handle);
 */
import { spawn } from "node:child_process";
import type { Server } from "node:net";

const CHILD = `
const net = require("node:net");
const s = net.createServer();
s.on("error", (e) => { process.send({ error: e.message }); process.exit(1); });
s.listen({ host: process.argv[1], port: Number(process.argv[2]), exclusive: true }, () => {
  process.send({ port: s.address().port }, s, () => process.exit(0));
});`;

/** A net.Server handle bound to host:port inside the namespace at `netnsPath` (port 0: any), and its port. */
export function listenInNetns(
  netnsPath: string,
  host: string,
  port: number,
): Promise<{ handle: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn("nsenter", [`--net=${netnsPath}`, "--", process.execPath, "-e", CHILD, host, String(port)], {
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    let err = "";
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.on("message", (m: { port?: number; error?: string }, handle) => {
      if (m.error || !handle)
        return reject(new Error(`listen on ${host}:${port} in ${netnsPath}: ${m.error ?? "no socket handed over"}`));
      resolve({ handle: handle as Server, port: m.port! });
    });
    child.on("exit", (code) => {
      if (code !== 0) reject(new Error(`listen on ${host}:${port} in ${netnsPath}: exit ${code} ${err.trim()}`));
    });
  });
}
