// A TCP sink for throughput tests: node sink-server.mjs HOST PORT BYTES. Prints "listening" once
// bound, then, when BYTES have arrived on one connection, {"bytes":N,"ms":T} with T measured from
// the first byte to the last, and exits.
import { createServer } from "node:net";
const [host, port, want] = process.argv.slice(2);
const total = Number(want);
const srv = createServer((sock) => {
  let got = 0;
  let start = 0n;
  sock.on("data", (d) => {
    if (got === 0) start = process.hrtime.bigint();
    got += d.length;
    if (got >= total) {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      process.stdout.write(JSON.stringify({ bytes: got, first: d.length, ms }) + "\n", () => process.exit(0));
    }
  });
});
srv.listen(Number(port), host, () => console.log("listening"));
