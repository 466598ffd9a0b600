// An application's own types under strict TypeScript, without casts: a payload declared as an
// interface (no index signature), any other JSON as chat data, and listeners that name the data
// they expect (the client cannot check what the server sends: that is the application's claim).
import { WebSocket } from 'ws';
import { RealtimeClient, type Envelope } from 'realtime-client';

interface ChatData {
  text: string;
  name: string;
}

const client = new RealtimeClient({ url: 'ws://localhost:8080', rooms: ['general'], WebSocket });
// Rooms as a constant list of the application's.
const ROOMS = ['general', 'alerts'] as const;
new RealtimeClient({ url: 'ws://localhost:8080', rooms: ROOMS, WebSocket, autoConnect: false });
const msg: ChatData = { text: 'hi', name: 'Ann' };
client.send('general', msg);
client.send('general', [1, 2, 3]);
client.send('general', 'plain text');

const onChat = (m: Envelope<ChatData>) => console.log(m.data?.text.toUpperCase());
client.on('message', onChat);
client.off('message', onChat);
client.on('message', (m) => console.log(m.data?.text)); // untyped: Envelope, data unknown values
client.once('system', (m: Envelope<{ event: string }>) => console.log(m.data?.event));
client.on('state', (s, d) => {
  if (s === 'closed') console.log(d.error?.code);
});
client.on('recovered', (r) => {
  if (!r.recovered) console.log(r.room, r.reason);
});
client.on('error', (e) => {
  if (e.code === 'message_too_big') console.log(e.room, e.frame?.length, e.cause);
});

// Still refused: a listener for something else than an envelope, or for another event's data.
// @ts-expect-error
client.on('message', (n: number) => console.log(n));
// @ts-expect-error
client.on('presence', (m: Envelope<ChatData>) => console.log(m));
