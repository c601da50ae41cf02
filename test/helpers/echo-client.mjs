// Asks an echo server for the address it sees. Usage: node echo-client.mjs tcp|udp HOST PORT [timeoutMs].
// Prints the answer and exits 0, or prints the error and exits 1.
import { request } from "node:http";
import { createSocket } from "node:dgram";
const [proto, host, port, timeout = "3000"] = process.argv.slice(2);
const fail = (e) => {
  console.log(`error: ${e}`);
  process.exit(1);
};
setTimeout(() => fail("timeout"), Number(timeout)).unref();
if (proto === "udp") {
  const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
  sock.on("message", (m) => {
    console.log(m.toString());
    process.exit(0);
  });
  sock.on("error", fail);
  sock.send("hi", Number(port), host);
  setInterval(() => sock.send("hi", Number(port), host), 300).unref();
} else {
  const req = request({ host, port: Number(port), path: "/", agent: false }, (res) => {
    let body = "";
    res.on("data", (d) => (body += d));
    res.on("end", () => {
      console.log(body);
      process.exit(0);
    });
  });
  req.on("error", (e) => fail(e.message));
  req.end();
}
