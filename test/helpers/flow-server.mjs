// A server for long-lived flows: TCP echoes every line back on the same connection, UDP echoes
// every datagram. Usage: node flow-server.mjs tcp|udp HOST PORT. Prints "listening" once bound.
// Exits when stdin ends (the test that started it is gone: no orphan keeps a namespace busy).
// A flow sends 100 messages a second; a packet loop (an echo that comes back as a request)
// would run as fast as the CPU allows, so beyond LOOP_PER_SECOND echoes in one second the rest
// of that second is dropped and the first time is said on stderr: the loop breaks, the test sees it.
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
const [proto, host, port] = process.argv.slice(2);
const LOOP_PER_SECOND = 2000;
let windowStart = 0;
let inWindow = 0;
let told = false;
const overLimit = (from) => {
  const now = Date.now();
  if (now - windowStart >= 1000) {
    windowStart = now;
    inWindow = 0;
  }
  if (++inWindow <= LOOP_PER_SECOND) return false;
  if (!told) {
    told = true;
    console.error(
      `loop: more than ${LOOP_PER_SECOND} ${proto} echoes in one second (last from ${from}); dropped`,
    );
  }
  return true;
};
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
if (proto === "udp") {
  const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
  sock.on("message", (msg, rinfo) => {
    if (!overLimit(`${rinfo.address}:${rinfo.port}`)) sock.send(msg, rinfo.port, rinfo.address);
  });
  sock.bind(Number(port), host, () => console.log("listening"));
} else {
  const srv = createServer((s) => {
    s.on("error", () => undefined);
    s.on("data", (d) => {
      if (overLimit(`${s.remoteAddress}:${s.remotePort}`)) return;
      if (!s.write(d)) {
        s.pause();
        s.once("drain", () => s.resume());
      }
    });
  });
  srv.listen(Number(port), host, () => console.log("listening"));
}
