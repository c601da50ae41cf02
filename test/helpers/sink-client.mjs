// Sends BYTES zero bytes to HOST:PORT over TCP: node sink-client.mjs HOST PORT BYTES.
import { connect } from "node:net";
const [host, port, bytes] = process.argv.slice(2);
const sock = connect(Number(port), host, () => sock.end(Buffer.alloc(Number(bytes))));
sock.on("error", (e) => {
  console.error(e.message);
  process.exit(1);
});
