// An HTTP (tcp) or datagram (udp) server that answers with the client address it sees.
// Usage: node echo-server.mjs tcp|udp HOST PORT. Prints "listening" once bound.
import { createServer } from "node:http";
import { createSocket } from "node:dgram";
const [proto, host, port] = process.argv.slice(2);
if (proto === "udp") {
  const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
  sock.on("message", (_msg, rinfo) => sock.send(`${rinfo.address}`, rinfo.port, rinfo.address));
  sock.bind(Number(port), host, () => console.log("listening"));
} else {
  const srv = createServer((req, res) => res.end(`${req.socket.remoteAddress}`));
  srv.listen(Number(port), host, () => console.log("listening"));
}
