package remote

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

const seedSnapshot = `{"version": 1,
 "seq": 7,
 "time": "2023-11-14T22:00:02Z",
 "hosts": [
  {"host": "web1",
   "addresses": [
    {"ip": "192.0.2.10", "from": "2023-11-14T22:00:01Z", "until": null}
   ],
   "bindings": [
    {"proto": "tcp", "local_ip": "0.0.0.0", "local_port": 80, "remote_ip": "", "remote_port": 0, "state": "listen", "pid": 100, "start_time": "2023-11-14T21:58:20Z", "process": "nginx", "exe": "/usr/bin/nginx", "cmdline": "nginx --serve", "uid": 1000, "user": "alice", "container": "", "from": "2023-11-14T22:00:01Z", "until": null, "inode": 1, "netns": 1}
   ]}
 ]}
`

const seedEvents = `{"type":"hello","seq":7,"host":"web1"}
{"type":"heartbeat","seq":7}
{"type":"event","seq":8,"time":"2023-11-14T22:00:03Z","kind":"bound","binding":{"proto":"udp","local_ip":"::","local_port":53,"remote_ip":"","remote_port":0,"state":"unconn","pid":5,"start_time":null,"process":"dns","exe":"","cmdline":"","uid":0,"user":"root","container":"","from":"2023-11-14T22:00:03Z","until":null,"inode":9}}
{"type":"event","seq":9,"kind":"unbound","binding":{"proto":"tcp","local_ip":"10.0.0.1","local_port":1,"remote_ip":"10.0.0.2","remote_port":2,"state":"time-wait","pid":0,"from":"2023-11-14T22:00:03Z","until":"2023-11-14T22:00:04Z"}}
{"type":"resync","seq":99,"error":"subscriber too slow"}
`

// FuzzDecodeSnapshot feeds arbitrary bytes to the /v1/bindings decoder:
// it must not panic, and what it accepts must survive a round trip.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Add([]byte(seedSnapshot))
	f.Add([]byte(`{"version":1,"seq":0,"time":null,"hosts":[{"host":"h","addresses":[],"bindings":[]}]}`))
	f.Add([]byte(`{"version":1,"hosts":[{"host":"h","bindings":[{"proto":"tcp","local_ip":"::ffff:1.2.3.4","local_port":70000}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeSnapshot(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := writeSnapshot(&buf, FromView(v)); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		v2, err := DecodeSnapshot(&buf)
		if err != nil {
			t.Fatalf("decode of re-encoded view: %v\n%s", err, buf.String())
		}
		if len(v2.Bindings) != len(v.Bindings) || len(v2.Addrs) != len(v.Addrs) || v2.Seq != v.Seq || v2.Host != v.Host {
			t.Fatalf("round trip changed the view: %+v -> %+v", v, v2)
		}
	})
}

// FuzzEventStream feeds arbitrary bytes to the /v1/events reader: it must
// not panic and must end with an error (streams never end cleanly).
func FuzzEventStream(f *testing.F) {
	f.Add([]byte(seedEvents))
	f.Add([]byte("{\"type\":\"hello\",\"seq\":0,\"host\":\"h\"}\n{\"type\":\"event\",\"seq\":1}\n"))
	f.Add([]byte("{\"type\":\"hello\",\"seq\":18446744073709551615,\"host\":\"h\"}\n{\"type\":\"event\",\"seq\":0,\"kind\":\"bound\",\"binding\":{}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		body := io.NopCloser(bytes.NewReader(data))
		s := &Stream{url: "fuzz", body: body, br: bufio.NewReaderSize(body, 64)}
		m, err := s.read()
		if err != nil || m.Type != MsgHello {
			return
		}
		s.Host, s.last = m.Host, m.Seq
		for i := 0; ; i++ {
			if i > len(data) {
				t.Fatal("stream yields more events than it has bytes")
			}
			e, err := s.Next()
			if err != nil {
				break
			}
			if e.Seq != m.Seq+uint64(i)+1 {
				t.Fatalf("event %d has seq %d after hello %d", i, e.Seq, m.Seq)
			}
		}
	})
}
