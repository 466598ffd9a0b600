// Go peer: gorilla/websocket with a hub goroutine in the style of gorilla's chat example (register,
// unregister and broadcast channels; a read pump and a write pump per client; a buffered send
// channel, and a client that cannot keep up is dropped). Rooms are a map from room to clients.
// Speaks the realtime protocol at /ws/{room}: welcome `system` first; {"type":"chat","data":X} ->
// envelope to every member of the room, sender included, one text frame per envelope.
//
// Usage: realtime-peer-go [--listen 127.0.0.1:0] [--send-buffer 256]   (prints "listening on HOST:PORT")
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	writeWait      = 10 * time.Second
	pongWait       = 60 * time.Second
	pingPeriod     = (pongWait * 9) / 10
	maxMessageSize = 65536
)

// Messages a client may have queued before the hub drops it (gorilla's chat example: 256).
var sendBuffer = 256

var roomRe = regexp.MustCompile(`^/ws/([A-Za-z0-9_.:-]{1,128})$`)

type roomMessage struct {
	room string
	data []byte
}

type Client struct {
	hub  *Hub
	conn *websocket.Conn
	send chan []byte
	room string
	id   string
}

type Hub struct {
	rooms      map[string]map[*Client]bool
	broadcast  chan roomMessage
	register   chan *Client
	unregister chan *Client
}

func newHub() *Hub {
	return &Hub{
		rooms:      make(map[string]map[*Client]bool),
		broadcast:  make(chan roomMessage, 1024),
		register:   make(chan *Client, 1024),
		unregister: make(chan *Client, 1024),
	}
}

func (h *Hub) run() {
	for {
		select {
		case c := <-h.register:
			members := h.rooms[c.room]
			if members == nil {
				members = make(map[*Client]bool)
				h.rooms[c.room] = members
			}
			members[c] = true
		case c := <-h.unregister:
			if members, ok := h.rooms[c.room]; ok {
				if _, ok := members[c]; ok {
					delete(members, c)
					close(c.send)
					if len(members) == 0 {
						delete(h.rooms, c.room)
					}
				}
			}
		case m := <-h.broadcast:
			members := h.rooms[m.room]
			for c := range members {
				select {
				case c.send <- m.data:
				default:
					close(c.send)
					delete(members, c)
				}
			}
		}
	}
}

var nextID uint64
var nextConn uint64
var idPrefix = strconv.FormatInt(time.Now().UnixMilli(), 36) + "-"

func envelope(typ, room, from string, data []byte) []byte {
	var b strings.Builder
	b.Grow(96 + len(room) + len(from) + len(data))
	b.WriteString(`{"id":"`)
	b.WriteString(idPrefix)
	b.WriteString(strconv.FormatUint(atomic.AddUint64(&nextID, 1), 10))
	b.WriteString(`","type":"`)
	b.WriteString(typ)
	b.WriteString(`","room":`)
	r, _ := json.Marshal(room)
	b.Write(r)
	if from != "" {
		b.WriteString(`,"from":"`)
		b.WriteString(from)
		b.WriteString(`"`)
	}
	b.WriteString(`,"data":`)
	b.Write(data)
	b.WriteString(`,"timestamp":"`)
	b.WriteString(time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
	b.WriteString(`"}`)
	return []byte(b.String())
}

type clientMessage struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func (c *Client) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { c.conn.SetReadDeadline(time.Now().Add(pongWait)); return nil })
	for {
		_, message, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		c.conn.SetReadDeadline(time.Now().Add(pongWait))
		var msg clientMessage
		if err := json.Unmarshal(message, &msg); err != nil {
			continue
		}
		switch msg.Type {
		case "chat":
			data := []byte(msg.Data)
			if len(data) == 0 {
				data = []byte("{}")
			}
			c.hub.broadcast <- roomMessage{room: c.room, data: envelope("chat", c.room, c.id, data)}
		case "ping":
			select {
			case c.send <- envelope("pong", c.room, "", []byte("{}")):
			default:
			}
		}
	}
}

func (c *Client) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case message, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, message); err != nil {
				return
			}
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	CheckOrigin:     func(*http.Request) bool { return true },
}

func serveWs(hub *Hub, w http.ResponseWriter, r *http.Request) {
	m := roomRe.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.Error(w, "bad room", http.StatusBadRequest)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	id := "c" + strconv.FormatUint(atomic.AddUint64(&nextConn, 1), 10)
	client := &Client{hub: hub, conn: conn, send: make(chan []byte, sendBuffer), room: m[1], id: id}
	room, _ := json.Marshal(m[1])
	welcome := `{"event":"welcome","connection_id":"` + id + `","user_id":"` + id + `","room":` + string(room) + `}`
	client.send <- envelope("system", m[1], "", []byte(welcome))
	hub.register <- client
	go client.writePump()
	go client.readPump()
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "HOST:PORT to listen on")
	flag.IntVar(&sendBuffer, "send-buffer", sendBuffer, "messages queued per client before it is dropped")
	flag.Parse()
	hub := newHub()
	go hub.run()
	mux := http.NewServeMux()
	mux.HandleFunc("/ws/", func(w http.ResponseWriter, r *http.Request) { serveWs(hub, w, r) })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("listening on %s\n", ln.Addr().String())
	os.Stdout.Sync()
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
