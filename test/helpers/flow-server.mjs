// A server for long-lived flows: TCP echoes every line back on the same connection, UDP echoes
// every datagram. Usage: node flow-server.mjs tcp|udp HOST PORT. Prints "listening" once bound.
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
const [proto, host, port] = process.argv.slice(2);
if (proto === "udp") {
  const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
  sock.on("message", (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  sock.bind(Number(port), host, () => console.log("listening"));
} else {
  const srv = createServer((s) => {
    s.on("error", () => undefined);
    s.pipe(s);
  });
  srv.listen(Number(port), host, () => console.log("listening"));
}
