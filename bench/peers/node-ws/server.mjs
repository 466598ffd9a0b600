// Node.js peer: the npm `ws` package on node:http, rooms as Sets of sockets. Speaks the realtime
// protocol at /ws/{room}: welcome `system` first; {"type":"chat","data":X} -> envelope to every
// member of the room, sender included.
// Usage: node server.mjs [--listen 127.0.0.1:0]   (prints "listening on HOST:PORT")
import http from "node:http";
import { WebSocketServer } from "ws";

const args = process.argv.slice(2);
let listen = process.env.LISTEN || "127.0.0.1:0";
for (let i = 0; i < args.length; i++) if (args[i] === "--listen") listen = args[++i];
const colon = listen.lastIndexOf(":");
const host = listen.slice(0, colon);
const port = Number(listen.slice(colon + 1));

const ROOM_RE = /^\/ws\/([A-Za-z0-9_.:-]{1,128})$/;
const rooms = new Map(); // room -> Set<WebSocket>
let nextConn = 0;
let nextId = 0;
const idPrefix = Date.now().toString(36) + "-";

function envelope(type, room, from, data) {
  return (
    '{"id":"' + idPrefix + (++nextId) + '","type":"' + type + '","room":' + JSON.stringify(room) +
    (from ? ',"from":"' + from + '"' : "") + ',"data":' + data + ',"timestamp":"' +
    new Date().toISOString() + '"}'
  );
}

function broadcast(room, text) {
  const members = rooms.get(room);
  if (!members) return;
  for (const ws of members) if (ws.readyState === 1) ws.send(text);
}

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") return res.end("ok");
  if (req.url === "/api/publish" && req.method === "POST") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      try {
        const b = JSON.parse(body);
        const data = b.data !== undefined ? JSON.stringify(b.data) : JSON.stringify({ text: b.text || "" });
        broadcast(String(b.room || ""), envelope(b.type || "chat", String(b.room || ""), "", data));
        res.writeHead(202).end('{"id":"' + idPrefix + nextId + '"}');
      } catch {
        res.writeHead(400).end("bad body");
      }
    });
    return;
  }
  res.writeHead(404).end("not found");
});

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 65536 });

server.on("upgrade", (req, socket, head) => {
  const m = ROOM_RE.exec(req.url.split("?")[0]);
  if (!m) {
    socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const room = m[1];
    const id = "c" + (++nextConn);
    let members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    members.add(ws);
    ws.send(envelope("system", room, "", '{"event":"welcome","connection_id":"' + id +
                     '","user_id":"' + id + '","room":' + JSON.stringify(room) + "}"));
    ws.on("message", (buf, isBinary) => {
      if (isBinary) return;
      let msg;
      try {
        msg = JSON.parse(buf);
      } catch {
        ws.send(envelope("error", room, "", '{"error":"invalid json","code":"invalid_json"}'));
        return;
      }
      if (msg.type === "chat") {
        broadcast(room, envelope("chat", room, id, msg.data === undefined ? "{}" : JSON.stringify(msg.data)));
      } else if (msg.type === "ping") {
        ws.send(envelope("pong", room, "", "{}"));
      }
    });
    ws.on("error", () => {});
    ws.on("close", () => {
      members.delete(ws);
      if (members.size === 0) rooms.delete(room);
    });
  });
});

server.listen(port, host, () => {
  const a = server.address();
  process.stdout.write(`listening on ${a.address}:${a.port}\n`);
});
