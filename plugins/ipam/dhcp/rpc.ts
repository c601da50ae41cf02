/**
 * The plugin ↔ daemon protocol: HTTP/1.1 on the daemon's unix socket (upstream's path,
 * /run/cni/dhcp.sock), one POST per call, JSON both ways. Upstream speaks Go's net/rpc (gob) on
 * the same socket; the two are not interchangeable, and a cni-nft plugin that finds upstream's
 * daemon says so instead of failing obscurely.
 */
import { request } from "node:http";
import { CniError, ErrorCode } from "../../../src/cni/index.js";

export type Method = "allocate" | "release" | "check" | "gc" | "status";

export interface CallArgs {
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as received. */
  args: Record<string, string>;
  /** The plugin's stdin. */
  stdin: string;
  /** GC: the attachments still in use. */
  validAttachments?: { containerID: string; ifname: string }[];
}

export type Reply = { ok: true; result?: unknown } | { ok: false; code: number; msg: string };

export function call(
  socketPath: string,
  method: Method,
  body: CallArgs,
  timeoutMs = 600_000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method: "POST",
        path: `/cni-nft/dhcp/v1/${method}`,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (data += d));
        res.on("end", () => {
          let reply: Reply;
          try {
            reply = JSON.parse(data) as Reply;
          } catch {
            return reject(
              new CniError(
                ErrorCode.PluginNotAvailable,
                `the daemon on ${socketPath} is not cni-nft's dhcp daemon (HTTP ${res.statusCode}; upstream's speaks Go net/rpc): start cni-nft's "dhcp daemon"`,
              ),
            );
          }
          if (reply.ok) resolve(reply.result);
          else reject(new CniError(reply.code, reply.msg));
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs / 1000} s`)));
    req.on("error", (e: NodeJS.ErrnoException) =>
      reject(
        new CniError(
          e.code === "ENOENT" || e.code === "ECONNREFUSED"
            ? ErrorCode.PluginNotAvailable
            : ErrorCode.IOFailure,
          `error dialing DHCP daemon on ${socketPath}: ${e.message}${e.code === "ENOENT" || e.code === "ECONNREFUSED" ? ' (is "dhcp daemon" running?)' : ""}`,
        ),
      ),
    );
    req.end(JSON.stringify(body));
  });
}
