package tracker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type scanStep struct {
	at    float64
	addrs []netip.Addr
	socks []Observed
	want  []string // events
}

func TestDiffAndHistory(t *testing.T) {
	sshd := proc(812, -3600, "sshd")
	child := proc(1001, 1, "sshd-child")
	web := proc(900, -100, "nginx")
	web2 := proc(900, 50, "nginx") // same pid, later start: pid reuse
	curl := proc(2000, 0, "curl")
	host := addrs("192.0.2.10", "127.0.0.1")

	tests := []struct {
		name        string
		steps       []scanStep
		wantHistory []string
	}{{
		name: "bound then unbound",
		steps: []scanStep{
			{1, host, []Observed{listen("0.0.0.0:22", 10, sshd)}, []string{"bound tcp 0.0.0.0:22 sshd/812"}},
			{2, host, []Observed{listen("0.0.0.0:22", 10, sshd)}, []string{}},
			{3, host, nil, []string{"unbound tcp 0.0.0.0:22 sshd/812"}},
		},
		wantHistory: []string{"tcp 0.0.0.0:22 sshd/812 [1,3)"},
	}, {
		name: "socket passed to another process",
		steps: []scanStep{
			{1, host, []Observed{listen("0.0.0.0:80", 20, web)}, []string{"bound tcp 0.0.0.0:80 nginx/900"}},
			{2, host, []Observed{listen("0.0.0.0:80", 20, child)}, []string{"owner-changed tcp 0.0.0.0:80 sshd-child/1001"}},
		},
		wantHistory: []string{"tcp 0.0.0.0:80 nginx/900 [1,2)", "tcp 0.0.0.0:80 sshd-child/1001 [2,open)"},
	}, {
		name: "pid reused by a new process on the same port",
		steps: []scanStep{
			{1, host, []Observed{listen("0.0.0.0:80", 20, web)}, []string{"bound tcp 0.0.0.0:80 nginx/900"}},
			{2, host, nil, []string{"unbound tcp 0.0.0.0:80 nginx/900"}},
			{3, host, []Observed{listen("0.0.0.0:80", 21, web2)}, []string{"bound tcp 0.0.0.0:80 nginx/900"}},
		},
		wantHistory: []string{"tcp 0.0.0.0:80 nginx/900 [1,2)", "tcp 0.0.0.0:80 nginx/900 [3,open)"},
	}, {
		name: "pid reuse on the same socket is an owner change",
		steps: []scanStep{
			{1, host, []Observed{listen("0.0.0.0:80", 20, web)}, []string{"bound tcp 0.0.0.0:80 nginx/900"}},
			{2, host, []Observed{listen("0.0.0.0:80", 20, web2)}, []string{"owner-changed tcp 0.0.0.0:80 nginx/900"}},
		},
		wantHistory: []string{"tcp 0.0.0.0:80 nginx/900 [1,2)", "tcp 0.0.0.0:80 nginx/900 [2,open)"},
	}, {
		name: "owner found after the socket keeps the start",
		steps: []scanStep{
			{1, host, []Observed{listen("0.0.0.0:22", 30, nil)}, []string{"bound tcp 0.0.0.0:22 ?"}},
			{2, host, []Observed{listen("0.0.0.0:22", 30, sshd)}, []string{"owner-changed tcp 0.0.0.0:22 sshd/812"}},
		},
		wantHistory: []string{"tcp 0.0.0.0:22 sshd/812 [1,open)"},
	}, {
		name: "owner not seen for one scan is no change",
		steps: []scanStep{
			{1, host, []Observed{listen("0.0.0.0:22", 30, sshd)}, []string{"bound tcp 0.0.0.0:22 sshd/812"}},
			{2, host, []Observed{listen("0.0.0.0:22", 30, nil)}, []string{}},
			{3, host, []Observed{listen("0.0.0.0:22", 30, sshd)}, []string{}},
		},
		wantHistory: []string{"tcp 0.0.0.0:22 sshd/812 [1,open)"},
	}, {
		name: "inherited accept-queue and time-wait sockets make no churn",
		steps: []scanStep{
			{1, host, []Observed{
				listen("0.0.0.0:80", 50, web),
				inherited(state(conn("192.0.2.10:80", "198.51.100.7:40000", 0, nil), StateSynRecv), web),
			}, []string{"bound tcp 0.0.0.0:80 nginx/900"}},
			{2, host, []Observed{
				listen("0.0.0.0:80", 50, web),
				inherited(state(conn("192.0.2.10:80", "198.51.100.7:40000", 0, nil), StateTimeWait), web),
				inherited(state(conn("192.0.2.10:80", "198.51.100.8:40001", 0, nil), StateTimeWait), web),
			}, []string{}},
			{3, host, []Observed{listen("0.0.0.0:80", 50, web)}, []string{}},
		},
		wantHistory: []string{"tcp 0.0.0.0:80 nginx/900 [1,open)"},
	}, {
		name: "client connection keeps its owner through time-wait, one interval",
		steps: []scanStep{
			{1, host, []Observed{conn("192.0.2.10:50000", "203.0.113.5:443", 40, curl)}, []string{"bound tcp 192.0.2.10:50000->203.0.113.5:443 curl/2000"}},
			{2, host, []Observed{state(inherited(conn("192.0.2.10:50000", "203.0.113.5:443", 40, nil), nil), StateTimeWait)}, []string{}},
			{3, host, nil, []string{"unbound tcp 192.0.2.10:50000->203.0.113.5:443 curl/2000"}},
		},
		wantHistory: []string{"tcp 192.0.2.10:50000->203.0.113.5:443 curl/2000 [1,3)"},
	}, {
		name: "connections of the listener's process are covered by the listener",
		steps: []scanStep{
			{1, host, []Observed{listen("0.0.0.0:80", 50, web), conn("192.0.2.10:80", "198.51.100.7:40000", 51, web)},
				[]string{"bound tcp 0.0.0.0:80 nginx/900", "bound tcp 192.0.2.10:80->198.51.100.7:40000 nginx/900"}},
			{2, host, []Observed{listen("0.0.0.0:80", 50, web), inherited(state(conn("192.0.2.10:80", "198.51.100.7:40000", 0, nil), StateTimeWait), web)}, []string{}},
			{3, host, []Observed{listen("0.0.0.0:80", 50, web)}, []string{"unbound tcp 192.0.2.10:80->198.51.100.7:40000 nginx/900"}},
		},
		wantHistory: []string{"tcp 0.0.0.0:80 nginx/900 [1,open)"},
	}, {
		name: "connection of another process than the listener's is recorded",
		steps: []scanStep{
			{1, host, []Observed{listen("0.0.0.0:22", 60, sshd), conn("192.0.2.10:22", "198.51.100.7:50001", 61, child)},
				[]string{"bound tcp 0.0.0.0:22 sshd/812", "bound tcp 192.0.2.10:22->198.51.100.7:50001 sshd-child/1001"}},
		},
		wantHistory: []string{"tcp 0.0.0.0:22 sshd/812 [1,open)", "tcp 192.0.2.10:22->198.51.100.7:50001 sshd-child/1001 [1,open)"},
	}, {
		name: "covered connection is recorded from its start when the listener goes",
		steps: []scanStep{
			{1, host, []Observed{listen("127.0.0.1:8080", 70, web), conn("127.0.0.1:8080", "127.0.0.1:40000", 71, web)},
				[]string{"bound tcp 127.0.0.1:8080 nginx/900", "bound tcp 127.0.0.1:8080->127.0.0.1:40000 nginx/900"}},
			{2, host, []Observed{conn("127.0.0.1:8080", "127.0.0.1:40000", 71, web)}, []string{"unbound tcp 127.0.0.1:8080 nginx/900"}},
			{3, host, nil, []string{"unbound tcp 127.0.0.1:8080->127.0.0.1:40000 nginx/900"}},
		},
		wantHistory: []string{"tcp 127.0.0.1:8080 nginx/900 [1,2)", "tcp 127.0.0.1:8080->127.0.0.1:40000 nginx/900 [1,3)"},
	}, {
		name: "wildcard covers only addresses of the host",
		steps: []scanStep{
			{1, addrs("192.0.2.10"), []Observed{listen("0.0.0.0:80", 80, web), conn("10.9.9.9:80", "198.51.100.7:40000", 81, web)},
				[]string{"bound tcp 0.0.0.0:80 nginx/900", "bound tcp 10.9.9.9:80->198.51.100.7:40000 nginx/900"}},
		},
		wantHistory: []string{"tcp 0.0.0.0:80 nginx/900 [1,open)", "tcp 10.9.9.9:80->198.51.100.7:40000 nginx/900 [1,open)"},
	}, {
		name: "duplicates in a snapshot count once",
		steps: []scanStep{
			{1, host, []Observed{listen("0.0.0.0:22", 10, sshd), listen("0.0.0.0:22", 10, sshd)}, []string{"bound tcp 0.0.0.0:22 sshd/812"}},
			{2, host, []Observed{listen("0.0.0.0:22", 10, sshd), listen("0.0.0.0:22", 10, sshd)}, []string{}},
		},
		wantHistory: []string{"tcp 0.0.0.0:22 sshd/812 [1,open)"},
	}, {
		name: "IPv4-mapped addresses are IPv4",
		steps: []scanStep{
			{1, host, []Observed{listen("[::ffff:127.0.0.1]:8080", 90, web)}, []string{"bound tcp 127.0.0.1:8080 nginx/900"}},
			{2, host, []Observed{listen("127.0.0.1:8080", 90, web)}, []string{}},
		},
		wantHistory: []string{"tcp 127.0.0.1:8080 nginx/900 [1,open)"},
	}, {
		name: "ownerless sockets are shown but not recorded",
		steps: []scanStep{
			{1, host, []Observed{udp("0.0.0.0:5353", 95, nil)}, []string{"bound udp 0.0.0.0:5353 ?"}},
			{2, host, nil, []string{"unbound udp 0.0.0.0:5353 ?"}},
		},
		wantHistory: []string{},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, fs := newTestTracker(t, "", Options{})
			for _, s := range tc.steps {
				got := describeEvents(step(t, tr, fs, s.at, s.addrs, s.socks...))
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Errorf("events at %v (-want +got):\n%s", s.at, diff)
				}
			}
			if diff := cmp.Diff(tc.wantHistory, historyOf(t, tr)); diff != "" {
				t.Errorf("history (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventsCarrySeqAndTime(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	p := proc(1, 0, "a")
	step(t, tr, fs, 1, nil, listen("0.0.0.0:1", 1, p), listen("0.0.0.0:2", 2, p))
	evs := step(t, tr, fs, 2, nil, listen("0.0.0.0:2", 2, p))
	all, err := tr.EventsSince(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || len(evs) != 1 {
		t.Fatalf("got %d events, %d in the last scan; want 3 and 1", len(all), len(evs))
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d: seq %d", i, e.Seq)
		}
	}
	if !all[2].Time.Equal(at(2)) || all[2].Kind != EventUnbound || !all[2].Binding.Until.Equal(at(2)) {
		t.Errorf("unbound event = %+v, want at t0+2s", all[2])
	}
	if v := tr.Current(); v.Seq != 3 || len(v.Bindings) != 1 || !v.Time.Equal(at(2)) {
		t.Errorf("view seq %d, %d bindings, time %v", v.Seq, len(v.Bindings), v.Time)
	}
}

func TestAddressIntervals(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	step(t, tr, fs, 1, addrs("192.0.2.10", "::ffff:192.0.2.11"))
	step(t, tr, fs, 2, addrs("192.0.2.10"))
	step(t, tr, fs, 3, nil) // a scan without address information keeps them
	step(t, tr, fs, 4, addrs("192.0.2.10", "2001:db8::1"))
	got, err := tr.AddrHistory(context.Background(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var desc []string
	for _, a := range got {
		until := "open"
		if !a.Until.IsZero() {
			until = fmt.Sprint(a.Until.Sub(t0).Seconds())
		}
		desc = append(desc, fmt.Sprintf("%s [%v,%s)", a.Addr, a.From.Sub(t0).Seconds(), until))
	}
	want := []string{"192.0.2.10 [1,open)", "192.0.2.11 [1,2)", "2001:db8::1 [4,open)"}
	if diff := cmp.Diff(want, desc); diff != "" {
		t.Errorf("address history (-want +got):\n%s", diff)
	}
	// A window after 192.0.2.11 went leaves it out.
	got, err = tr.AddrHistory(context.Background(), at(2.5), at(10))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("window [2.5,10]: %d intervals, want 2", len(got))
	}
	if v := tr.Current(); len(v.Addrs) != 2 {
		t.Errorf("current addresses: %v", v.Addrs)
	}
}

func TestHistoryWindow(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	a, b := proc(1, 0, "a"), proc(2, 0, "b")
	step(t, tr, fs, 10, nil, listen("0.0.0.0:1", 1, a))
	step(t, tr, fs, 20, nil, listen("0.0.0.0:2", 2, b))
	step(t, tr, fs, 30, nil, listen("0.0.0.0:2", 2, b))
	// A long interval (over longInterval) lands in the other bucket.
	step(t, tr, fs, 7300, nil)
	step(t, tr, fs, 7400, nil, listen("0.0.0.0:3", 3, a))
	tests := []struct {
		from, to float64
		want     []string
	}{
		{0, 5, []string{}},
		{0, 10, []string{"tcp 0.0.0.0:1 a/1 [10,20)"}},
		{15, 19, []string{"tcp 0.0.0.0:1 a/1 [10,20)"}},
		{20, 21, []string{"tcp 0.0.0.0:2 b/2 [20,7300)"}},
		{5000, 5001, []string{"tcp 0.0.0.0:2 b/2 [20,7300)"}},
		{7300, 7399, []string{}},
		{7000, 8000, []string{"tcp 0.0.0.0:2 b/2 [20,7300)", "tcp 0.0.0.0:3 a/1 [7400,open)"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v-%v", tc.from, tc.to), func(t *testing.T) {
			got := []string{}
			err := tr.History(context.Background(), at(tc.from), at(tc.to), func(b Binding) error {
				got = append(got, describeInterval(&b))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestClockSteppingBackKeepsIntervalsOrdered(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	p := proc(1, 0, "a")
	step(t, tr, fs, 10, nil, listen("0.0.0.0:1", 1, p))
	step(t, tr, fs, 5, nil) // clock went back 5 s
	got := historyOf(t, tr)
	if diff := cmp.Diff([]string{"tcp 0.0.0.0:1 a/1 [10,10)"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestClockStepBack: a clock that steps back by more than a second (NTP
// setting a clock that ran an hour ahead) ends the open intervals at the
// last scan and starts them again at the new time, so that flows of the
// new time find their bindings instead of a history frozen an hour ahead;
// it is logged. A step back of under a second keeps the last scan's time.
func TestClockStepBack(t *testing.T) {
	var logged bytes.Buffer
	dir := t.TempDir()
	tr, fs := newTestTracker(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	p := proc(1, 0, "a")
	own := []netip.Addr{netipAddr("192.0.2.10")}
	for _, tm := range []float64{3600, 3601, 10, 11, 10.5, 12} {
		step(t, tr, fs, tm, own, listen("0.0.0.0:1", 1, p))
	}
	if diff := cmp.Diff([]string{"tcp 0.0.0.0:1 a/1 [10,open)", "tcp 0.0.0.0:1 a/1 [3600,3601)"}, historyOf(t, tr)); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	out := logged.String()
	if n := strings.Count(out, "clock stepped back"); n != 1 || !strings.Contains(out, "step=59m51s") {
		t.Errorf("want one step-back warning for 59m51s, got %d:\n%s", n, out)
	}
	ib := NewIndexBuilder()
	if err := ib.AddHistory(context.Background(), tr, time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	ix := ib.Build(IndexOptions{Tolerance: -1})
	k := FlowKey{Proto: ProtoTCP, Src: netip.MustParseAddrPort("198.51.100.1:40000"), Dst: netip.MustParseAddrPort("192.0.2.10:1")}
	if m := ix.Lookup(k, at(11.5), at(11.6)); !m.OK() || m.Binding.Owner.Name != "a" {
		t.Errorf("a flow after the step: %+v, want the listener", m)
	}
	// The store kept the restart: a tracker reopened on it continues.
	tr.Close()
	tr, fs = newTestTracker(t, dir, Options{})
	step(t, tr, fs, 13, own, listen("0.0.0.0:1", 1, p))
	if diff := cmp.Diff([]string{"tcp 0.0.0.0:1 a/1 [10,open)", "tcp 0.0.0.0:1 a/1 [3600,3601)"}, historyOf(t, tr)); diff != "" {
		t.Errorf("history after a restart (-want +got):\n%s", diff)
	}
}

// TestViewOrderUnderChurn checks the incrementally merged view order
// against a full sort over many scans of random changes.
func TestViewOrderUnderChurn(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	rng := rand.New(rand.NewPCG(3, 4))
	procs := []*Process{proc(1, 0, "a"), proc(2, 0, "b"), proc(3, 0, "c")}
	live := map[int]Observed{}
	for scan := range 60 {
		seen := map[int]bool{}
		for i := range live {
			seen[i] = true
		}
		for range 8 {
			i := rng.IntN(40)
			switch o, ok := live[i]; {
			case !ok:
				live[i] = conn(fmt.Sprintf("192.0.2.10:%d", 1000+i), fmt.Sprintf("198.51.100.1:%d", 2000+rng.IntN(3)), uint64(100*scan+i+1), procs[rng.IntN(3)])
			case seen[i] && o.Inode != 0 && rng.IntN(2) == 0:
				live[i] = state(inherited(o, nil), StateTimeWait) // continuation
			default:
				delete(live, i)
			}
		}
		var socks []Observed
		for _, o := range live {
			socks = append(socks, o)
		}
		step(t, tr, fs, float64(scan), nil, socks...)
		v := tr.Current()
		if len(v.Bindings) != len(live) {
			t.Fatalf("scan %d: %d bindings in the view, %d live", scan, len(v.Bindings), len(live))
		}
		for i := 1; i < len(v.Bindings); i++ {
			a, b := v.Bindings[i-1], v.Bindings[i]
			if compareKeys(keyOf(&a.Socket), keyOf(&b.Socket)) >= 0 {
				t.Fatalf("scan %d: view not sorted at %d: %s, %s", scan, i, describeBinding(&a), describeBinding(&b))
			}
		}
	}
}

// TestDeniedWarning: the tracker warns once when a scan cannot read some
// processes' fds, with advice that fits who it runs as (run as root, or,
// as root, why even root was refused), and says when all owners are
// visible again.
func TestDeniedWarning(t *testing.T) {
	sc := &fakeScanner{}
	var logged bytes.Buffer
	tr, err := New(Options{Scanner: sc, Host: "web1", Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx := context.Background()
	for i, denied := range [][]int32{{1}, {1, 7}, nil} {
		sc.set(at(float64(i)), addrs("10.0.0.1"))
		sc.mu.Lock()
		sc.snap.Denied = denied
		sc.mu.Unlock()
		if err := tr.ScanOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	out := logged.String()
	advice := "run as root (CAP_SYS_PTRACE"
	if os.Geteuid() == 0 {
		advice = "even as root"
	}
	if strings.Count(out, "cannot see the owners") != 1 || !strings.Contains(out, advice) || !strings.Contains(out, "all socket owners visible again") {
		t.Errorf("log, want one warning with %q, then the all-clear:\n%s", advice, out)
	}
}
