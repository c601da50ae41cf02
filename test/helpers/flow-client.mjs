// One long-lived flow: sends a numbered message every INTERVAL ms and counts the echoes.
// Usage: node flow-client.mjs tcp|udp HOST PORT INTERVAL. Prints "flowing" after the first echo;
// on "stop" (stdin) waits for the echoes in flight, prints a JSON summary and exits. The summary names
// the messages never echoed and when each was sent (ms after the first), so a loss in the middle
// of the flow (a gap in the path) tells itself apart from one at its end (an echo still in flight),
// and the CPU time the client used (cpuMs). Exits when stdin ends without "stop" (the test is gone).
import { connect } from "node:net";
import { createSocket } from "node:dgram";
import { createInterface } from "node:readline";
const [proto, host, port, interval] = process.argv.slice(2);
const stats = { sent: 0, received: 0, errors: [], maxGapMs: 0, missing: [], cpuMs: 0 };
const echoed = new Set();
const sentAt = [];
let last = 0;
let announced = false;
const got = (n) => {
  const now = Date.now();
  if (last) stats.maxGapMs = Math.max(stats.maxGapMs, now - last);
  last = now;
  stats.received += n;
  if (!announced) {
    announced = true;
    console.log("flowing");
  }
};
let send;
let close;
if (proto === "udp") {
  const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
  sock.on("message", (m) => {
    echoed.add(Number(m.toString()));
    got(1);
  });
  sock.on("error", (e) => stats.errors.push(e.message));
  sock.connect(Number(port), host);
  send = (msg) => sock.send(msg);
  close = () => sock.close();
} else {
  const sock = connect(Number(port), host);
  let buf = "";
  sock.setEncoding("utf8");
  sock.on("data", (d) => {
    buf += d;
    const lines = buf.split("\n");
    buf = lines.pop();
    for (const l of lines) echoed.add(Number(l));
    got(lines.length);
  });
  sock.on("error", (e) => stats.errors.push(e.message));
  sock.on("close", () => stats.errors.push("closed"));
  send = (msg) => sock.write(msg + "\n");
  close = () => sock.destroy();
}
let seq = 0;
const timer = setInterval(() => {
  stats.sent++;
  sentAt.push(Date.now());
  try {
    send(String(seq++));
  } catch (e) {
    stats.errors.push(e.message);
  }
}, Number(interval));
// On "stop": the echoes still in flight are waited for until every message is echoed, for at
// most IN_FLIGHT_MS (a loaded machine can hold one back for a while; a fixed short wait counted
// such a late echo as lost), then the summary.
const IN_FLIGHT_MS = 10_000;
const lines = createInterface({ input: process.stdin });
let stopping = false;
lines.on("close", () => {
  if (!stopping) process.exit(0);
});
lines.on("line", (l) => {
  if (l.trim() !== "stop") return;
  stopping = true;
  clearInterval(timer);
  const stoppedAt = Date.now();
  const settle = setInterval(() => {
    if (echoed.size < seq && Date.now() - stoppedAt < IN_FLIGHT_MS) return;
    clearInterval(settle);
    stats.errors = [...new Set(stats.errors)];
    for (let i = 0; i < seq; i++)
      if (!echoed.has(i))
        stats.missing.push({ seq: i, sentMs: sentAt[i] - sentAt[0], ofMs: sentAt.at(-1) - sentAt[0] });
    const cpu = process.cpuUsage();
    stats.cpuMs = Math.round((cpu.user + cpu.system) / 1000);
    console.log(JSON.stringify(stats));
    close();
    process.exit(0);
  }, 10);
});
