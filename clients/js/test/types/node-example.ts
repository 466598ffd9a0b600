// The README's Node example, and the API as an application uses it: type-checked (strict) by
// test/types.test.mjs against realtime-client.d.ts, imported by the package's own name.
import { WebSocket } from 'ws';
import { RealtimeClient, RealtimeError, type Envelope } from 'realtime-client';

const client = new RealtimeClient({
  url: 'ws://localhost:8080',
  rooms: ['general', 'alerts'],
  token: async () => (await fetch('https://auth.example/token')).text(), // optional
  WebSocket,
});
await client.connect();

client.on('message', (msg: Envelope) => console.log(msg.id, msg.room, msg.from, msg.data?.text));
client.on('recovered', (r) => {
  if (!r.recovered) console.log(`messages of ${r.room} may be missing`, r.reason, r.lastId);
});
client.on('state', (state, detail) => console.log(state, detail.delayMs));
client.on('error', (err: RealtimeError) => console.log(err.code, err.message));
const sent: boolean = client.send('general', { text: 'hello', name: 'Ann' });
client.send(undefined, 'to the socket\'s room');
client.join('random');
client.leave('alerts');
client.setStatus('away');
const rtt: number = await client.ping();
void client.reconnect();
const saved: Record<string, string> = client.lastIds;
console.log(sent, rtt, saved, client.queued, client.state, client.rooms);
await client.close();
