package tracker

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// sampleHosts is the content of testdata/bindings/sample.json.
func sampleHosts() []HostHistory {
	sshd := &Process{PID: 812, StartTime: at(-3600), Name: "sshd", Exe: "/usr/sbin/sshd", Cmdline: "sshd -D", User: "root"}
	app := &Process{PID: 4242, StartTime: at(-60), Name: "my-long-process-name", Exe: "/opt/app/bin/my-long-process-name",
		Cmdline: "sh -c \"echo <a>, b: c\"\ttab \\ é", UID: 1000, User: "alice", Container: "0123456789ab"}
	return []HostHistory{{
		Host: "web1",
		Addrs: []AddrInterval{
			{Addr: netipAddr("192.0.2.10"), From: at(0)},
			{Addr: netipAddr("2001:db8::10"), From: at(0), Until: at(3600.5)},
		},
		Bindings: []Binding{
			{Socket: Socket{Proto: ProtoTCP, Local: ap("0.0.0.0:22"), State: StateListen}, Owner: sshd, From: at(0)},
			{Socket: Socket{Proto: ProtoTCP, Local: ap("192.0.2.10:22"), Remote: ap("198.51.100.7:50001"), State: StateEstablished, UID: 1000},
				Owner: app, From: at(10.25), Until: at(20)},
			{Socket: Socket{Proto: ProtoUDP, Local: ap("[::]:53"), State: StateUnconn, UID: 1000}, Owner: app, From: at(1)},
			{Socket: Socket{Proto: ProtoUDP, Local: ap("[2001:db8::10]:5353"), Remote: ap("[2001:db8::1]:53"), State: StateEstablished}, From: at(2), Until: at(3)},
		},
	}, {
		Host: "db1",
	}}
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "bindings", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteFileGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFile(&buf, sampleHosts()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "bindings", "sample.json")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(string(readGolden(t, "sample.json")), buf.String()); diff != "" {
		t.Errorf("(-golden +got):\n%s", diff)
	}
}

// withHosts sets the Host of every binding, as the reader does.
func withHosts(hs []HostHistory) []HostHistory {
	for i := range hs {
		for j := range hs[i].Bindings {
			hs[i].Bindings[j].Host = hs[i].Host
		}
	}
	return hs
}

func TestReadFileRoundTrip(t *testing.T) {
	f, err := ReadFile(bytes.NewReader(readGolden(t, "sample.json")), "sample.json")
	if err != nil {
		t.Fatal(err)
	}
	want := withHosts(sampleHosts())
	// What the format does not carry: socket uid of owned sockets comes
	// from the owner; comm is not written.
	want[0].Bindings[0].UID = 0
	if diff := cmp.Diff(want, f.Hosts, equateAddrs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var buf bytes.Buffer
	if err := WriteFile(&buf, f.Hosts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), readGolden(t, "sample.json")) {
		t.Errorf("write(read(golden)) differs from the golden file:\n%s", buf.String())
	}
	// Owners with the same details share a *Process.
	if f.Hosts[0].Bindings[1].Owner != f.Hosts[0].Bindings[2].Owner {
		t.Error("identical owners were not shared")
	}
}

func TestReadIssueExample(t *testing.T) {
	f, err := ReadFile(bytes.NewReader(readGolden(t, "issue4.json")), "issue4.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []HostHistory{{
		Host:  "web1",
		Addrs: []AddrInterval{{Addr: netipAddr("192.0.2.10"), From: at(0)}},
		Bindings: []Binding{{
			Socket: Socket{Proto: ProtoTCP, Local: ap("0.0.0.0:22"), State: StateListen},
			Owner:  &Process{PID: 812, StartTime: at(-3600), Name: "sshd", Exe: "/usr/sbin/sshd", Cmdline: "sshd -D", User: "root"},
			Host:   "web1", From: at(0),
		}},
	}}
	if diff := cmp.Diff(want, f.Hosts, equateAddrs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// goodBinding is a valid binding line; tests break one field.
const goodBinding = `{"proto": "tcp", "local_ip": "0.0.0.0", "local_port": 22, "remote_ip": "", "remote_port": 0, "state": "listen", "pid": 812, "start_time": null, "process": "sshd", "exe": "", "cmdline": "", "uid": 0, "user": "root", "container": "", "from": "2023-11-14T22:00:00Z", "until": null}`

// fileWith returns a file whose fourth binding (line 9) is b.
func fileWith(b string) string {
	return `{"version": 1,
 "hosts": [
  {"host": "web1",
   "addresses": [],
   "bindings": [
    ` + goodBinding + `,
    ` + goodBinding + `,
    ` + goodBinding + `,
    ` + b + `
   ]}
 ]}
`
}

func TestReadFileErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"port out of range", fileWith(strings.Replace(goodBinding, `"local_port": 22`, `"local_port": 70000`, 1)),
			"bindings.json:9: hosts[0].bindings[3].local_port: 70000 out of range"},
		{"negative remote port", fileWith(strings.Replace(goodBinding, `"remote_ip": "", "remote_port": 0`, `"remote_ip": "192.0.2.1", "remote_port": -1`, 1)),
			"bindings.json:9: hosts[0].bindings[3].remote_port: -1 out of range"},
		{"port as a string", fileWith(strings.Replace(goodBinding, `"local_port": 22`, `"local_port": "ssh"`, 1)),
			`bindings.json:9: hosts[0].bindings[3].local_port: "ssh": want an integer`},
		{"fractional port", fileWith(strings.Replace(goodBinding, `"local_port": 22`, `"local_port": 22.5`, 1)),
			`bindings.json:9: hosts[0].bindings[3].local_port: 22.5: want an integer`},
		{"missing port", fileWith(strings.Replace(goodBinding, `"local_port": 22, `, ``, 1)),
			"bindings.json:9: hosts[0].bindings[3].local_port: missing"},
		{"bad protocol", fileWith(strings.Replace(goodBinding, `"tcp"`, `"sctp"`, 1)),
			`bindings.json:9: hosts[0].bindings[3].proto: "sctp" is not tcp or udp`},
		{"bad state", fileWith(strings.Replace(goodBinding, `"listen"`, `"LISTEN"`, 1)),
			`bindings.json:9: hosts[0].bindings[3].state: "LISTEN" is not a socket state as ss(8) names them`},
		{"bad address", fileWith(strings.Replace(goodBinding, `"0.0.0.0"`, `"0.0.0.256"`, 1)),
			`bindings.json:9: hosts[0].bindings[3].local_ip: "0.0.0.256" is not an IP address`},
		{"remote port without address", fileWith(strings.Replace(goodBinding, `"remote_port": 0`, `"remote_port": 80`, 1)),
			"bindings.json:9: hosts[0].bindings[3].remote_port: 80 without a remote_ip"},
		{"bad time", fileWith(strings.Replace(goodBinding, `"2023-11-14T22:00:00Z"`, `"yesterday"`, 1)),
			`bindings.json:9: hosts[0].bindings[3].from: "yesterday" is not an RFC 3339 time`},
		{"missing from", fileWith(strings.Replace(goodBinding, `"from": "2023-11-14T22:00:00Z", `, ``, 1)),
			"bindings.json:9: hosts[0].bindings[3].from: missing (want a time)"},
		{"until before from", fileWith(strings.Replace(goodBinding, `"until": null`, `"until": "2023-11-14T21:00:00Z"`, 1)),
			"bindings.json:9: hosts[0].bindings[3].until: 2023-11-14T21:00:00Z is before from 2023-11-14T22:00:00Z"},
		{"pid out of range", fileWith(strings.Replace(goodBinding, `"pid": 812`, `"pid": 4294967296`, 1)),
			"bindings.json:9: hosts[0].bindings[3].pid: 4294967296 out of range"},
		{"binding not an object", fileWith(`[1, 2]`),
			"bindings.json:9: hosts[0].bindings[3]: want an object, got [1, 2]"},
		{"syntax error", fileWith(`{"proto": "tcp",, }`),
			"bindings.json:9: invalid character ',' looking for beginning of object key string"},
		{"truncated", fileWith(goodBinding)[:200],
			"bindings.json:6: hosts[0].bindings[0]: unexpected end of file"},
		{"empty", "", "bindings.json:1: unexpected end of file"},
		{"not an object", "[]", "bindings.json:1: want an object, got ["},
		{"wrong version", `{"version": 2, "hosts": []}`,
			"bindings.json:1: version: version 2 not supported (this netdumper reads version 1)"},
		{"missing version", `{"hosts": []}`, "bindings.json:1: version: missing"},
		{"missing hosts", "{\"version\": 1\n}", "bindings.json:2: hosts: missing"},
		{"missing host name", "{\"version\": 1, \"hosts\": [\n{\"bindings\": []}]}", "bindings.json:2: hosts[0].host: missing"},
		{"empty host name", `{"version": 1, "hosts": [{"host": ""}]}`, `bindings.json:1: hosts[0].host: want a non-empty string, got ""`},
		{"bad address interval", "{\"version\": 1, \"hosts\": [{\"host\": \"h\", \"addresses\": [\n{\"ip\": \"fe80::1%eth0\", \"from\": \"2023-11-14T22:00:00Z\"}]}]}",
			`bindings.json:2: hosts[0].addresses[0].ip: "fe80::1%eth0" is not an IP address`},
		{"trailing data", `{"version": 1, "hosts": []} {}`, "bindings.json:1: data after the end of the file's object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFile(strings.NewReader(tc.in), "bindings.json")
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrBadFile) {
				t.Fatalf("error %v (%T), want a *FileError", err, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestReadFileAcceptsVariants(t *testing.T) {
	// Host name after its bindings, unknown keys, version last, no
	// optional fields.
	in := `{"hosts": [{"bindings": [{"proto": "udp", "local_ip": "::ffff:192.0.2.1", "local_port": 53, "state": "unconn", "from": "2023-11-14T22:00:00+01:00", "extra": {"x": [1]}}],
	  "comment": "ignored", "host": "h1"}], "generator": "test", "version": 1}`
	f, err := ReadFile(strings.NewReader(in), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []HostHistory{{Host: "h1", Bindings: []Binding{{
		Socket: Socket{Proto: ProtoUDP, Local: ap("192.0.2.1:53"), State: StateUnconn},
		Host:   "h1", From: at(-3600),
	}}}}
	if diff := cmp.Diff(want, f.Hosts, equateAddrs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDecodeFileStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := DecodeFile(bytes.NewReader(readGolden(t, "sample.json")), "x", func(string, *AddrInterval, *Binding) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("DecodeFile = %v after %d calls, want the callback's error after 1", err, n)
	}
}

func TestReadFileLineNumbersAfterManyLines(t *testing.T) {
	// Enough lines that the reader forgets old newline offsets.
	var sb strings.Builder
	sb.WriteString("{\"version\": 1,\n \"hosts\": [{\"host\": \"h\", \"bindings\": [\n")
	for range 10000 {
		sb.WriteString(goodBinding + ",\n")
	}
	sb.WriteString(strings.Replace(goodBinding, `"local_port": 22`, `"local_port": 65536`, 1) + "]}]}\n")
	_, err := ReadFile(strings.NewReader(sb.String()), "big.json")
	want := "big.json:10003: hosts[0].bindings[10000].local_port: 65536 out of range"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestReadFileIOError(t *testing.T) {
	_, err := ReadFile(failingReader{}, "b.json")
	if err == nil || err.Error() != "read b.json: disk on fire" {
		t.Errorf("error %v", err)
	}
	var fe *FileError
	if errors.As(err, &fe) {
		t.Error("an I/O error reported as a malformed file")
	}
}

func TestExportFromTracker(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	p := proc(812, -3600, "sshd")
	step(t, tr, fs, 1, addrs("192.0.2.10"), listen("0.0.0.0:22", 1, p), conn("192.0.2.10:5000", "203.0.113.5:443", 2, p))
	step(t, tr, fs, 2, addrs("192.0.2.10"), listen("0.0.0.0:22", 1, p))
	var buf bytes.Buffer
	if err := tr.Export(context.Background(), &buf, time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(&buf, "export")
	if err != nil {
		t.Fatalf("reading the export: %v\n%s", err, buf.String())
	}
	if len(f.Hosts) != 1 || f.Hosts[0].Host != "web1" || len(f.Hosts[0].Bindings) != 2 || len(f.Hosts[0].Addrs) != 1 {
		t.Fatalf("export: %+v", f)
	}
	// The exported file gives the same index answers as the tracker.
	ix := NewIndex(IndexOptions{}, f.Hosts...)
	m := ix.Lookup(FlowKey{Proto: ProtoTCP, Src: ap("203.0.113.5:443"), Dst: ap("192.0.2.10:5000")}, at(1.5), at(1.6))
	if !m.OK() || m.Kind != MatchExact || m.Binding.Owner.Name != "sshd" {
		t.Errorf("lookup in the export: %+v", m)
	}
}

func TestFileWriterMisuse(t *testing.T) {
	fw := NewFileWriter(io.Discard)
	if err := fw.WriteBinding(&Binding{}); err == nil {
		t.Error("binding before a host: no error")
	}
	var buf bytes.Buffer
	fw = NewFileWriter(&buf)
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "{\"version\": 1,\n \"hosts\": []}\n" {
		t.Errorf("empty file: %q", got)
	}
	if _, err := ReadFile(&buf, ""); err != nil {
		t.Errorf("reading an empty file back: %v", err)
	}
}

func FuzzReadFile(f *testing.F) {
	for _, name := range []string{"sample.json", "issue4.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "bindings", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(fileWith(goodBinding)))
	f.Add([]byte(`{"version": 1, "hosts": [{"host": "h", "addresses": [{"ip": "::1", "from": "2023-11-14T22:00:00Z", "until": "2023-11-14T23:00:00Z"}]}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, ok := readFileFast(in); ok {
			checkFastPath(t, in, true) // the fast path agrees with the full decoder
		}
		f1, err := ReadFile(bytes.NewReader(in), "fuzz")
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.Line < 1 {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if err := WriteFile(&out, f1.Hosts); err != nil {
			t.Fatal(err)
		}
		f2, err := ReadFile(bytes.NewReader(out.Bytes()), "rewritten")
		if err != nil {
			t.Fatalf("rewritten file does not read: %v\n%s", err, out.String())
		}
		if diff := cmp.Diff(f1, f2, equateAddrs); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		var again bytes.Buffer
		if err := WriteFile(&again, f2.Hosts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), again.Bytes()) {
			t.Fatal("writing is not stable")
		}
	})
}

// TestReadFileReadError: a read error names the file once, whether the
// error already names it (an *os.File) or not.
func TestReadFileReadError(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = ReadFile(f, dir)
	if err == nil || strings.Count(err.Error(), dir) != 1 || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v, want it named once", err)
	}
	_, err = ReadFile(iotest.ErrReader(errors.New("disk on fire")), "bindings.json")
	if err == nil || err.Error() != "read bindings.json: disk on fire" {
		t.Errorf("reader error: %v", err)
	}
}
