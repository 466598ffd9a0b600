// Socket.IO peer, optionally scaled out with @socket.io/redis-adapter (--redis redis://HOST:PORT).
// Socket.IO has its own framing (Engine.IO v4 / Socket.IO v5), so the realtime messages travel as
// Socket.IO events over the WebSocket transport at /socket.io/?EIO=4&transport=websocket&room=R:
//   server -> client: event "message" with the envelope object (welcome `system` first);
//   client -> server: event "message" with {"type":"chat","data":X} -> envelope to the whole room,
//   sender included, on every pod.
// Usage: node server.mjs [--listen 127.0.0.1:0] [--redis redis://127.0.0.1:6379]
import http from "node:http";
import { Server } from "socket.io";

const args = process.argv.slice(2);
let listen = process.env.LISTEN || "127.0.0.1:0";
let redisUrl = process.env.REDIS_URL || "";
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--listen") listen = args[++i];
  else if (args[i] === "--redis") redisUrl = args[++i];
}
const colon = listen.lastIndexOf(":");
const host = listen.slice(0, colon);
const port = Number(listen.slice(colon + 1));

const ROOM_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
let nextConn = 0;
let nextId = 0;
const idPrefix = process.pid.toString(36) + Date.now().toString(36) + "-";

function envelope(type, room, from, data) {
  const e = { id: idPrefix + (++nextId), type, room };
  if (from) e.from = from;
  e.data = data;
  e.timestamp = new Date().toISOString();
  return e;
}

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") return res.end("ok");
  res.writeHead(404).end("not found");
});
const io = new Server(server, {
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  maxHttpBufferSize: 65536,
  serveClient: false,
  cors: { origin: "*" },
});

if (redisUrl) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.on("connection", (socket) => {
  const room = String(socket.handshake.query.room || "");
  if (!ROOM_RE.test(room)) {
    socket.disconnect(true);
    return;
  }
  const id = "c" + (++nextConn);
  socket.join(room);
  socket.emit("message", envelope("system", room, "", {
    event: "welcome", connection_id: id, user_id: id, room,
  }));
  socket.on("message", (msg) => {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "chat") {
      io.to(room).emit("message", envelope("chat", room, id, msg.data === undefined ? {} : msg.data));
    } else if (msg.type === "ping") {
      socket.emit("message", envelope("pong", room, "", {}));
    }
  });
});

server.listen(port, host, () => {
  const a = server.address();
  process.stdout.write(`listening on ${a.address}:${a.port}\n`);
});
