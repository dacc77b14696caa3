package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/tracker"
)

var update = flag.Bool("update", false, "rewrite generated files (testdata/flows/bindings.json)")

// sampleUsers gives the sample processes plausible owners.
var sampleUsers = map[string]string{
	"sshd": "root", "nginx": "www-data", "postgres": "postgres", "systemd-resolve": "systemd-resolve",
	"chronyd": "_chrony", "snmpd": "Debian-snmp", "master": "root", "named": "bind", "dnsmasq": "dnsmasq",
}

// wildcardServices listen on the unspecified address, the others on the
// address their flows use.
var wildcardServices = map[string]bool{"sshd": true, "nginx": true}

// sampleBindingsHosts builds the bindings of the sample directory from the
// fixtures' ground truth: for the 2023 synthetic files, one socket per
// local address, port and protocol (services as listeners, some on the
// wildcard address; clients as connected sockets when they talked to one
// peer); for the 2026 softflowd capture, the traffic generator's
// listeners from its ss(8) snapshot (the curl clients had gone).
func sampleBindingsHosts(t *testing.T, dir string) []tracker.HostHistory {
	t.Helper()
	from := time.Date(2023, 11, 14, 22, 0, 0, 0, time.UTC)
	until := time.Date(2023, 11, 15, 0, 0, 0, 0, time.UTC)
	h := tracker.HostHistory{Host: "sample-host"}
	for _, a := range []string{"192.0.2.10", "10.20.0.5", "127.0.0.1", "2001:db8:10::5", "fd00:20::5", "::1"} {
		h.Addrs = append(h.Addrs, tracker.AddrInterval{Addr: netip.MustParseAddr(a), From: from, Until: until})
	}
	type key struct {
		proto tracker.Proto
		ap    netip.AddrPort
	}
	type sock struct {
		proc  string
		peers map[netip.AddrPort]bool
	}
	socks := map[key]*sock{}
	var order []key
	for _, name := range []string{"v9-mixed.truth.csv", "v9-alluser.truth.csv"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows[1:] {
			proto, _ := strconv.Atoi(r[2])
			if proto != 6 && proto != 17 {
				continue
			}
			lport, _ := strconv.Atoi(r[13])
			local := netip.AddrPortFrom(netip.MustParseAddr(r[12]), uint16(lport))
			sport, _ := strconv.Atoi(r[4])
			dport, _ := strconv.Atoi(r[6])
			src := netip.AddrPortFrom(netip.MustParseAddr(r[3]), uint16(sport))
			dst := netip.AddrPortFrom(netip.MustParseAddr(r[5]), uint16(dport))
			peer := dst
			if dst == local {
				peer = src
			}
			k := key{tracker.Proto(proto), local}
			s := socks[k]
			if s == nil {
				s = &sock{proc: r[14], peers: map[netip.AddrPort]bool{}}
				socks[k] = s
				order = append(order, k)
			}
			s.peers[peer] = true
		}
	}
	procs := map[string]*tracker.Process{}
	owner := func(name string, start time.Time) *tracker.Process {
		if p := procs[name]; p != nil {
			return p
		}
		user := sampleUsers[name]
		uid := uint32(0)
		if user == "" {
			user, uid = "alice", 1000
		} else if user != "root" {
			uid = uint32(100 + len(procs))
		}
		p := &tracker.Process{PID: int32(1000 + 7*len(procs)), Name: name, Comm: name, User: user, UID: uid,
			StartTime: start.Add(-time.Hour), Exe: "/usr/bin/" + strings.ReplaceAll(name, " ", "-")}
		procs[name] = p
		return p
	}
	wild := map[key]bool{}
	for _, k := range order {
		s := socks[k]
		b := tracker.Binding{Socket: tracker.Socket{Proto: k.proto, Local: k.ap}, Owner: owner(s.proc, from), From: from, Until: until}
		switch {
		case k.ap.Port() < 32768 || len(s.peers) > 1:
			b.State = tracker.StateListen
			if k.proto == tracker.ProtoUDP {
				b.State = tracker.StateUnconn
			}
			if wildcardServices[s.proc] {
				any := netip.IPv4Unspecified()
				if k.ap.Addr().Is6() {
					any = netip.IPv6Unspecified()
				}
				b.Local = netip.AddrPortFrom(any, k.ap.Port())
				if wild[key{k.proto, b.Local}] {
					continue
				}
				wild[key{k.proto, b.Local}] = true
			}
		default:
			for p := range s.peers {
				b.Remote = p
			}
			b.State = tracker.StateEstablished
		}
		h.Bindings = append(h.Bindings, b)
	}

	// The softflowd capture: python3 served HTTP and UDP echo on loopback.
	from, until = time.Date(2026, 11, 28, 5, 30, 0, 0, time.UTC), time.Date(2026, 11, 28, 5, 40, 0, 0, time.UTC)
	for _, a := range []string{"127.0.0.1", "::1"} {
		h.Addrs = append(h.Addrs, tracker.AddrInterval{Addr: netip.MustParseAddr(a), From: from, Until: until})
	}
	py := &tracker.Process{PID: 337, Name: "python3", Comm: "python3", User: "root", Exe: "/usr/bin/python3.11",
		Cmdline: "python3 lotraffic.py", StartTime: from}
	f, err := os.Open(filepath.Join(dir, "softflowd-v9.sockets.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || (fs[0] != "tcp" && fs[0] != "udp") {
			continue
		}
		ap, err := netip.ParseAddrPort(fs[4])
		if err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		b := tracker.Binding{Socket: tracker.Socket{Proto: tracker.ProtoTCP, Local: ap, State: tracker.StateListen}, Owner: py, From: from, Until: until}
		if fs[0] == "udp" {
			b.Proto, b.State = tracker.ProtoUDP, tracker.StateUnconn
		}
		h.Bindings = append(h.Bindings, b)
	}
	slices.SortStableFunc(h.Bindings, func(a, b tracker.Binding) int { return a.From.Compare(b.From) })
	return []tracker.HostHistory{h}
}

// TestSampleBindings checks that testdata/flows/bindings.json is what the
// fixtures' ground truth gives (go test -run TestSampleBindings -update
// rewrites it), and that it reads back.
func TestSampleBindings(t *testing.T) {
	var buf bytes.Buffer
	if err := tracker.WriteFile(&buf, sampleBindingsHosts(t, fixtures.Dir(t))); err != nil {
		t.Fatal(err)
	}
	root, err := fixtures.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, sampleDir, sampleBindings)
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, buf.Bytes()) {
		t.Fatalf("%s is out of date: go test ./cmd/netdumper -run TestSampleBindings -update", path)
	}
	if _, err := tracker.ReadFile(bytes.NewReader(got), path); err != nil {
		t.Fatal(err)
	}
}
