// Bun peer: Bun.serve with its built-in WebSocket server (uWebSockets inside) and server.publish
// for room fan-out. Speaks the realtime protocol at /ws/{room}:
//   welcome `system` first; {"type":"chat","data":X} -> envelope to every member, sender included.
// Usage: bun server.js [--listen 127.0.0.1:0]   (prints "listening on HOST:PORT")
const args = process.argv.slice(2);
let listen = process.env.LISTEN || "127.0.0.1:0";
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--listen") listen = args[++i];
}
const colon = listen.lastIndexOf(":");
const hostname = listen.slice(0, colon);
const port = Number(listen.slice(colon + 1));

const ROOM_RE = /^\/ws\/([A-Za-z0-9_.:-]{1,128})$/;
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

const server = Bun.serve({
  hostname,
  port,
  fetch(req, srv) {
    const url = new URL(req.url);
    const m = ROOM_RE.exec(url.pathname);
    if (m) {
      if (srv.upgrade(req, { data: { room: m[1], id: "c" + (++nextConn) } })) return undefined;
      return new Response("expected a websocket upgrade", { status: 400 });
    }
    if (url.pathname === "/healthz") return new Response("ok");
    if (url.pathname === "/api/publish" && req.method === "POST") {
      return req.json().then((body) => {
        const room = String(body.room || "");
        const data = body.data !== undefined ? JSON.stringify(body.data) : JSON.stringify({ text: body.text || "" });
        srv.publish(room, envelope(body.type || "chat", room, "", data));
        return new Response('{"id":"' + idPrefix + nextId + '"}', { status: 202 });
      });
    }
    return new Response("not found", { status: 404 });
  },
  websocket: {
    perMessageDeflate: false,
    idleTimeout: 0,
    maxPayloadLength: 65536,
    backpressureLimit: 1024 * 1024,
    closeOnBackpressureLimit: false,
    open(ws) {
      const { room, id } = ws.data;
      ws.subscribe(room);
      ws.send(envelope("system", room, "", '{"event":"welcome","connection_id":"' + id +
                       '","user_id":"' + id + '","room":' + JSON.stringify(room) + "}"));
    },
    message(ws, text) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch {
        ws.send(envelope("error", ws.data.room, "", '{"error":"invalid json","code":"invalid_json"}'));
        return;
      }
      if (msg.type === "chat") {
        const room = ws.data.room;
        const data = msg.data === undefined ? "{}" : JSON.stringify(msg.data);
        server.publish(room, envelope("chat", room, ws.data.id, data));
      } else if (msg.type === "ping") {
        ws.send(envelope("pong", ws.data.room, "", "{}"));
      }
    },
    close(ws) {
      ws.unsubscribe(ws.data.room);
    },
  },
});
console.log(`listening on ${server.hostname}:${server.port}`);
