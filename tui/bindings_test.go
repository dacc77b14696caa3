package tui

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/google/go-cmp/cmp"

	"github.com/netdumper/netdumper/tracker"
)

func TestFilterTerms(t *testing.T) {
	nginx := &tracker.Process{PID: 42, Name: "nginx", User: "www-data"}
	listen := tracker.Binding{Socket: tracker.Socket{Proto: tracker.ProtoTCP, Local: netip.MustParseAddrPort("10.0.0.1:443"),
		State: tracker.StateListen}, Owner: nginx, Host: "web1"}
	conn := tracker.Binding{Socket: tracker.Socket{Proto: tracker.ProtoUDP, Local: netip.MustParseAddrPort("10.0.0.1:40000"),
		Remote: netip.MustParseAddrPort("198.51.100.7:53"), State: tracker.StateEstablished},
		Owner: &tracker.Process{PID: 7, Name: "systemd-resolve", User: "systemd-resolve"}, Host: "db1"}
	noOwner := tracker.Binding{Socket: tracker.Socket{Proto: tracker.ProtoTCP, Local: netip.MustParseAddrPort("[::1]:22"),
		State: tracker.StateListen}, Host: "web1"}
	s := newBindingsScreen(&common{st: NewStyles(asciiRenderer()), now: func() time.Time { return testNow }, loc: time.UTC}, nil)
	rows := []*bindingRow{s.newRow(&listen, false, testNow), s.newRow(&conn, false, testNow), s.newRow(&noOwner, false, testNow),
		s.newRow(&conn, true, testNow)}
	for _, tc := range []struct {
		filter string
		want   []int // rows that pass
	}{
		{"", []int{0, 1, 2, 3}},
		{"port:443", []int{0}},
		{"port:53", []int{1, 3}},     // the remote port counts
		{"port:", []int{0, 1, 2, 3}}, // still typing: no filter yet
		{"port:x", nil},
		{"port:99999", nil},
		{"proc:NGI", []int{0}},
		{"user:systemd", []int{1, 3}},
		{"host:web", []int{0, 2}},
		{"proto:udp", []int{1, 3}},
		{"proto:u", []int{1, 3}},
		{"state:listen", []int{0, 2}},
		{"state:closed", []int{3}},
		{"!state:listen", []int{1, 3}},
		{"pid:42", []int{0}},
		{"addr:198.51", []int{1, 3}},
		{"addr:::1", []int{2}},
		{"resolve", []int{1, 3}},      // plain text: anywhere
		{"www-data 443", []int{0}},    // every term must match
		{"state:listen host:db", nil}, // none has both
		{"unknownprefix:x", nil},      // an unknown prefix is plain text
		{"!", nil},                    // a lone "!" is plain text
		{"!proc:nginx !proc:?", []int{1, 3}},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			terms := parseFilter(tc.filter)
			var got []int
			for i, r := range rows {
				if matchAll(terms, r) {
					got = append(got, i)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("filter %q (-want +got):\n%s", tc.filter, diff)
			}
		})
	}
}

func TestBindingsFilterAsYouType(t *testing.T) {
	src := newFakeSource("fake", genBindings(1000))
	h := newHarness(t, Options{Sources: []BindingsSource{src}, Start: "bindings"})
	s := h.m.binds
	h.until("rows", func() bool { return len(s.rows) == 1000 })
	h.keys("/")
	if !s.focused() {
		t.Fatal("/ did not focus the filter")
	}
	h.typeText("port:2")
	// "port:2" is port 2: nothing.
	if len(s.vis) != 0 {
		t.Fatalf("port:2 shows %d rows", len(s.vis))
	}
	h.typeText("2")
	want := 0
	for _, b := range genBindings(1000) {
		if b.Local.Port() == 22 || (b.Connected() && b.Remote.Port() == 22) {
			want++
		}
	}
	if len(s.vis) != want || want == 0 {
		t.Fatalf("port:22 shows %d rows, want %d", len(s.vis), want)
	}
	for _, r := range s.vis {
		if r.b.Local.Port() != 22 && r.b.Remote.Port() != 22 {
			t.Fatalf("row %v passed port:22", r.cells)
		}
	}
	// q types into the filter instead of quitting.
	h.typeText(" q")
	if h.quitted() || s.filter != "port:22 q" {
		t.Fatalf("filter %q, quit %v", s.filter, h.quitted())
	}
	h.keys("backspace", "backspace")
	h.typeText(" proc:ssh")
	for _, r := range s.vis {
		if r.b.Owner.Name != "sshd" {
			t.Fatalf("row %v passed proc:ssh", r.cells)
		}
	}
	if !strings.Contains(screenText(h.m), "of 1000 bindings") {
		t.Errorf("summary line does not count the filtered rows:\n%s", screenText(h.m))
	}
	h.keys("enter") // keep the filter, leave the input
	if s.focused() || s.filter == "" {
		t.Fatalf("enter: focused %v, filter %q", s.focused(), s.filter)
	}
	h.keys("esc") // clears it
	if s.filter != "" || len(s.vis) != 1000 {
		t.Fatalf("esc left filter %q with %d rows", s.filter, len(s.vis))
	}
}

func TestBindingsSort(t *testing.T) {
	bs := genBindings(300)
	src := newFakeSource("fake", bs)
	h := newHarness(t, Options{Sources: []BindingsSource{src}, Start: "bindings"})
	s := h.m.binds
	h.until("rows", func() bool { return len(s.rows) == 300 })
	sorted := func(cmpf func(a, b *bindingRow) int) bool {
		return slices.IsSortedFunc(s.vis, cmpf)
	}
	if s.sortCol != colLocal || !sorted(func(a, b *bindingRow) int { return compareAddrPort(a.b.Local, b.b.Local) }) {
		t.Fatal("not sorted by local address at start")
	}
	seen := map[int]bool{}
	for i := 0; i < colSince+1; i++ {
		h.keys("s")
		seen[s.sortCol] = true
		col := s.sortCol
		if !sorted(func(a, b *bindingRow) int { return compareBy(col, a, b) }) {
			t.Fatalf("not sorted by %s", bcolumns[col].title)
		}
		h.keys("S")
		if !sorted(func(a, b *bindingRow) int { return -compareBy(col, a, b) }) {
			t.Fatalf("not reverse sorted by %s", bcolumns[col].title)
		}
		h.keys("S")
	}
	if len(seen) != colSince+1 || seen[colUntil] {
		t.Errorf("s cycled through %v", seen)
	}
	if !strings.Contains(screenText(h.m), "sort local ▲") {
		t.Errorf("sort not shown:\n%s", screenText(h.m))
	}
}

func TestBindingsLiveUpdateKeepsCursor(t *testing.T) {
	bs := genBindings(500)
	src := newFakeSource("fake", bs)
	h := newHarness(t, Options{Sources: []BindingsSource{src}, Start: "bindings"})
	s := h.m.binds
	h.until("rows", func() bool { return len(s.rows) == 500 })
	h.keys("pgdown", "down", "down", "down")
	sel := s.selected()
	rel := s.nav.cursor - s.nav.offset
	// New sockets sort before the selected one, some others go away, and
	// the selected one changes state.
	next := slices.Clone(bs)
	for i := 0; i < 40; i++ {
		b := genBindings(1)[0]
		b.Local = netip.AddrPortFrom(netip.MustParseAddr("10.0.0.0"), uint16(100+i))
		next = append(next, b)
	}
	next = next[10:]
	for i := range next {
		if next[i].Local == sel.b.Local && next[i].Remote == sel.b.Remote {
			next[i].State = tracker.StateCloseWait
		}
	}
	src.set(next)
	h.until("update", func() bool { return len(s.rows) == len(next) })
	got := s.selected()
	if got.key != sel.key {
		t.Fatalf("cursor moved from %v to %v", sel.cells, got.cells)
	}
	if got.cells[colState] != "close-wait" {
		t.Errorf("state not updated: %v", got.cells)
	}
	if r := s.nav.cursor - s.nav.offset; r != rel {
		t.Errorf("cursor on screen row %d, was %d", r, rel)
	}
	// When the selected socket goes away the cursor stays at its place.
	cur := s.nav.cursor
	var gone []tracker.Binding
	for _, b := range next {
		if b.Local != sel.b.Local || b.Remote != sel.b.Remote {
			gone = append(gone, b)
		}
	}
	src.set(gone)
	h.until("update", func() bool { return len(s.rows) == len(gone) })
	if s.nav.cursor != cur {
		t.Errorf("cursor %d after the selected row went away, want %d", s.nav.cursor, cur)
	}
}

func TestBindingsRecentlyClosed(t *testing.T) {
	bs := genBindings(20)
	src := newFakeSource("fake", bs)
	old := bs[3]
	old.Until = testNow.Add(-time.Minute)
	old.Local = netip.MustParseAddrPort("10.9.9.9:5555")
	src.closed = []tracker.Binding{old}
	h := newHarness(t, Options{Sources: []BindingsSource{src}, Start: "bindings"})
	s := h.m.binds
	h.until("rows", func() bool { return len(s.rows) == 20 })
	h.keys("h")
	h.until("closed rows", func() bool { return len(s.rows) == 21 })
	txt := screenText(h.m)
	if !strings.Contains(txt, "UNTIL") || !strings.Contains(txt, "10.9.9.9:5555") || !strings.Contains(txt, "closed") {
		t.Fatalf("closed binding not shown:\n%s", txt)
	}
	h.typeText("/state:closed")
	if len(s.vis) != 1 || !s.vis[0].closed {
		t.Fatalf("state:closed shows %d rows", len(s.vis))
	}
	h.keys("esc", "h")
	if len(s.rows) != 20 || strings.Contains(screenText(h.m), "UNTIL") {
		t.Fatal("closed bindings still shown after h")
	}
}

func TestBindingsSourceDisconnectReconnect(t *testing.T) {
	src := newFakeSource("web1", genBindings(50))
	other := newFakeSource("db1", nil)
	h := newHarness(t, Options{Sources: []BindingsSource{src, other}, Start: "bindings"})
	s := h.m.binds
	h.until("rows", func() bool { return len(s.rows) == 50 })
	status := func() string { lines := strings.Split(screenText(h.m), "\n"); return lines[len(lines)-1] }
	if !strings.Contains(status(), "● web1 ok: live") {
		t.Fatalf("status line: %q", status())
	}
	src.setHealth(Health{HealthDown, "connection refused; retrying in 2s"})
	h.until("down", func() bool { return strings.Contains(status(), "web1 down: connection refused") })
	if len(s.rows) != 50 {
		t.Errorf("rows dropped while the source is down: %d", len(s.rows))
	}
	if !strings.Contains(status(), "db1 ok") {
		t.Errorf("the other source is affected: %q", status())
	}
	// Back, with changes made while it was away.
	src.mu.Lock()
	src.health = Health{HealthOK, "live"}
	src.mu.Unlock()
	src.set(genBindings(60))
	h.until("reconnected", func() bool { return strings.Contains(status(), "web1 ok") && len(s.rows) == 60 })
}

func TestBindingsThrottle(t *testing.T) {
	src := newFakeSource("fake", genBindings(10))
	h := newHarness(t, Options{Sources: []BindingsSource{src}, Start: "bindings", MinRefresh: time.Hour})
	s := h.m.binds
	h.until("first rows", func() bool { return len(s.rows) == 10 })
	src.set(genBindings(20))
	h.waitMsg(sourceMsg{})
	if len(s.rows) != 10 || !s.refreshPending {
		t.Fatalf("a second update within MinRefresh was applied at once (%d rows)", len(s.rows))
	}
	h.send(refreshTickMsg{})
	if len(s.rows) != 20 {
		t.Fatalf("the held-back update was not applied: %d rows", len(s.rows))
	}
}

func TestBindingsMouse(t *testing.T) {
	src := newFakeSource("fake", genBindings(200))
	h := newHarness(t, Options{Sources: []BindingsSource{src}, Start: "bindings"})
	s := h.m.binds
	h.until("rows", func() bool { return len(s.rows) == 200 })
	h.send(mouseWheel(false))
	if s.nav.offset != 3 || s.nav.cursor != 3 {
		t.Fatalf("wheel down: offset %d cursor %d", s.nav.offset, s.nav.cursor)
	}
	h.send(mouseClick(10, 1+2+5)) // tab bar, summary, header, then row 5
	if s.nav.cursor != 3+5 {
		t.Fatalf("click: cursor %d, want 8", s.nav.cursor)
	}
}

// TestBindingsFilterReopen: / on a screen with a filter edits that
// filter, with the cursor at its end: what is typed is one more term,
// after a space.
func TestBindingsFilterReopen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first []string // keys after "/" the first time, before enter
		again []string // keys after "/" the second time
		want  string   // the filter, after enter
	}{
		{"appends a term", []string{"port:22"}, []string{"proc:ssh"}, "port:22 proc:ssh"},
		{"one space only", []string{"port:22", "space"}, []string{"proc:ssh"}, "port:22 proc:ssh"},
		{"unchanged", []string{"port:22"}, nil, "port:22"},
		{"backspace edits the last term", []string{"port:22"}, []string{"backspace", "backspace", "3"}, "port:23"},
		{"cursor at the end", []string{"port:22", "left", "left"}, []string{"proc:ssh"}, "port:22 proc:ssh"},
		{"no filter yet", nil, []string{"port:22"}, "port:22"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newFakeSource("fake", genBindings(100))
			h := newHarness(t, Options{Sources: []BindingsSource{src}, Start: "bindings"})
			s := h.m.binds
			h.until("rows", func() bool { return len(s.rows) == 100 })
			press := func(keys []string) {
				for _, k := range keys {
					switch k {
					case "space", "backspace", "left":
						h.keys(k)
					default:
						h.typeText(k)
					}
				}
			}
			h.keys("/")
			press(tc.first)
			h.keys("enter", "/")
			press(tc.again)
			h.keys("enter")
			if s.focused() || s.filter != tc.want || s.input.Value() != tc.want {
				t.Fatalf("filter %q, input %q (focused %v), want %q", s.filter, s.input.Value(), s.focused(), tc.want)
			}
			want := 0
			for _, r := range s.rows {
				if matchAll(parseFilter(tc.want), r) {
					want++
				}
			}
			if len(s.vis) != want {
				t.Errorf("%d rows shown, want %d", len(s.vis), want)
			}
		})
	}
}

func TestBindingsNarrowKeepsPorts(t *testing.T) {
	// On a narrow terminal the address columns lose the start of the
	// address, not the port: the port is what tells sockets apart.
	bs := []tracker.Binding{
		{Socket: tracker.Socket{Proto: tracker.ProtoTCP, Local: netip.MustParseAddrPort("127.0.0.1:32903"), State: tracker.StateListen},
			Owner: &tracker.Process{PID: 10000, Name: "a-very-long-process-name-for-testing", User: "root"}, From: testNow},
		{Socket: tracker.Socket{Proto: tracker.ProtoTCP, Local: netip.MustParseAddrPort("[2001:db8::1234:5678]:44321"),
			Remote: netip.MustParseAddrPort("[2001:db8::abcd:ef01]:443"), State: tracker.StateEstablished},
			Owner: &tracker.Process{PID: 10001, Name: "curl", User: "root"}, From: testNow},
	}
	for _, w := range []int{60, 80} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			h := newHarness(t, Options{Sources: []BindingsSource{newFakeSource("fake", bs)}, Start: "bindings"})
			h.until("rows", func() bool { return len(h.m.binds.rows) == 2 })
			h.send(tea.WindowSizeMsg{Width: w, Height: 15})
			txt := screenText(h.m)
			for _, want := range []string{":32903", ":44321", ":443"} {
				if !strings.Contains(txt, want) {
					t.Errorf("port %s not shown at width %d:\n%s", want, w, txt)
				}
			}
		})
	}
}
