// Start fauxqs bound to 127.0.0.1 only, counting SQS requests by action inside the server.
//
// fauxqs 1.x always listens on 0.0.0.0; this wrapper rewrites the host of every listen() to
// loopback. Counting here costs a few map increments per request: far cheaper than a proxy,
// and it sees every client (our sidecar, the Go Carrier, the harness) the same way.
// Requests whose User-Agent carries "carrier-bench-harness" are counted apart.
// Control API on BENCH_CTL_PORT (loopback): GET /counts, POST /reset.
import http from "node:http";
import net from "node:net";

const LOOPBACK = "127.0.0.1";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args[0] !== null && typeof args[0] === "object") {
    args[0] = { ...args[0], host: LOOPBACK };
  } else if (typeof args[0] === "number" || typeof args[0] === "string") {
    if (typeof args[1] === "string") args[1] = LOOPBACK;
    else args.splice(1, 0, LOOPBACK);
  }
  return listen.apply(this, args);
};

let counts = {};
let control = null;

function bump(key) {
  counts[key] = (counts[key] || 0) + 1;
}

const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, res) {
  if (event === "request" && this !== control) {
    const target = req.headers["x-amz-target"];
    const action = target ? String(target).split(".").pop() : "query-protocol";
    const who = String(req.headers["user-agent"] || "").includes("carrier-bench-harness")
      ? "harness"
      : "client";
    bump(`${who}|${action}`);
    if (action === "ReceiveMessage" && who === "client") {
      const end = res.end;
      res.end = function (chunk, ...rest) {
        if (!chunk || !chunk.includes || !chunk.includes('"Messages"')) bump("client|ReceiveMessage:empty");
        return end.call(this, chunk, ...rest);
      };
    }
  }
  return emit.apply(this, arguments);
};

control = http.createServer((req, res) => {
  if (req.method === "POST" && req.url === "/reset") counts = {};
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(counts));
});
control.listen(Number(process.env.BENCH_CTL_PORT), LOOPBACK);

const { startFauxqs } = await import(process.env.BENCH_FAUXQS_APP);
await startFauxqs({ port: Number(process.env.FAUXQS_PORT), logger: false });
