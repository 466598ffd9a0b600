// The README's browser example (the page's own WebSocket, given explicitly or not).
import { RealtimeClient } from 'realtime-client';

const client = new RealtimeClient({ url: location.origin, rooms: ['general'] });
client.on('message', (msg) => console.log(msg.from, msg.data?.text));
client.send('general', { text: 'hello', name: 'Ann' });

const explicit = new RealtimeClient({ url: location.origin, WebSocket: globalThis.WebSocket });
explicit.on('welcome', (w) => console.log(w.connectionId, w.userId, w.lastId));
