package remote

import (
	"strings"
	"testing"
)

// TestWireErrorsNameTheField checks that a bad field of a /v1/bindings
// document or of an event is named with its place in the document.
func TestWireErrorsNameTheField(t *testing.T) {
	const good = `{"proto": "tcp", "local_ip": "0.0.0.0", "local_port": 80, "remote_ip": "", "remote_port": 0, "state": "listen", "pid": 100, "start_time": null, "process": "nginx", "exe": "", "cmdline": "", "uid": 0, "user": "root", "container": "", "from": "2023-11-14T22:00:01Z", "until": null, "inode": 7}`
	snapshot := func(b string) string {
		return `{"version": 1, "seq": 3, "time": null, "hosts": [{"host": "web1", "addresses": [{"ip": "192.0.2.10", "from": "2023-11-14T22:00:00Z", "until": null}], "bindings": [` + good + `, ` + b + `]}]}`
	}
	for _, tc := range []struct{ name, in, want string }{
		{"local ip", snapshot(strings.Replace(good, `"0.0.0.0"`, `"nowhere"`, 1)),
			`bindings document: hosts[0].bindings[1].local_ip: "nowhere" is not an IP address`},
		{"port type", snapshot(strings.Replace(good, `"local_port": 80`, `"local_port": 70000`, 1)),
			`bindings document: hosts.bindings.local_port: want uint16`},
		{"state", snapshot(strings.Replace(good, `"listen"`, `"napping"`, 1)),
			`bindings document: hosts[0].bindings[1].state: "napping" is not a socket state as ss(8) names them`},
		{"until", snapshot(strings.Replace(good, `"until": null`, `"until": "2023-11-14T22:00:00Z"`, 1)),
			`bindings document: hosts[0].bindings[1].until: 2023-11-14T22:00:00Z is before from 2023-11-14T22:00:01Z`},
		{"address", strings.Replace(snapshot(good), `"192.0.2.10"`, `"192.0.2.300"`, 1),
			`bindings document: hosts[0].addresses[0].ip: "192.0.2.300" is not an IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSnapshot(strings.NewReader(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %s", err, tc.want)
			}
		})
	}
	m, err := decodeMessage([]byte(`{"type": "event", "seq": 4, "kind": "bound", "binding": ` + strings.Replace(good, `"start_time": null`, `"start_time": "soon"`, 1) + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Event("web1"); err == nil || err.Error() != `binding.start_time: "soon" is not an RFC 3339 time` {
		t.Errorf("event error %v", err)
	}
	// A good binding converts, with the wire's extra fields.
	v, err := DecodeSnapshot(strings.NewReader(snapshot(good)))
	if err != nil {
		t.Fatal(err)
	}
	b := v.Bindings[1]
	if b.Host != "web1" || b.Inode != 7 || b.Owner == nil || b.Owner.Name != "nginx" || b.Owner.Comm != "nginx" || b.Local.Port() != 80 {
		t.Errorf("binding %+v, owner %+v", b, b.Owner)
	}
}
