package tui

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/tracker"
)

// testNow is the clock of every test model.
var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// asciiRenderer renders without colours or attributes, as under NO_COLOR.
func asciiRenderer() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	r.SetHasDarkBackground(true)
	return r
}

// testOptions are the options of a model under test: fixed clock, UTC,
// ASCII, no refresh throttle.
func testOptions(opts Options) Options {
	opts.Renderer = asciiRenderer()
	opts.Now = func() time.Time { return testNow }
	opts.Location = time.UTC
	if opts.MinRefresh == 0 {
		opts.MinRefresh = -1
	}
	return opts
}

// harness drives a Model as tea.Program would, but synchronously from the
// test: commands run on goroutines, their messages queue up, and the
// test decides when to feed them to Update.
type harness struct {
	t      *testing.T
	m      *Model
	ctx    context.Context
	msgs   chan tea.Msg
	mu     sync.Mutex
	quit   bool
	cancel context.CancelFunc
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, ctx: ctx, cancel: cancel, msgs: make(chan tea.Msg, 1024)}
	h.m = New(ctx, testOptions(opts))
	t.Cleanup(func() {
		cancel()
		h.m.preview.close()
	})
	h.send(tea.WindowSizeMsg{Width: 120, Height: 30})
	h.run(h.m.Init())
	return h
}

// run executes cmd on a goroutine and queues what it returns.
func (h *harness) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		if msg == nil {
			return
		}
		if b, ok := msg.(tea.BatchMsg); ok {
			for _, c := range b {
				h.run(c)
			}
			return
		}
		select {
		case h.msgs <- msg:
		case <-h.ctx.Done():
		}
	}()
}

// send hands msg to Update and runs the command it returns.
func (h *harness) send(msg tea.Msg) {
	if _, ok := msg.(tea.QuitMsg); ok {
		h.mu.Lock()
		h.quit = true
		h.mu.Unlock()
		return
	}
	_, cmd := h.m.Update(msg)
	h.run(cmd)
}

// keys sends key presses: single characters, or names such as "enter",
// "esc", "down", "pgdown", "ctrl+c", "space".
func (h *harness) keys(names ...string) {
	for _, n := range names {
		h.send(keyMsg(n))
	}
}

// typeText sends each rune of s as a key press.
func (h *harness) typeText(s string) {
	for _, r := range s {
		if r == ' ' {
			h.send(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}})
			continue
		}
		h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

func keyMsg(n string) tea.KeyMsg {
	named := map[string]tea.KeyType{
		"enter": tea.KeyEnter, "esc": tea.KeyEsc, "up": tea.KeyUp, "down": tea.KeyDown,
		"left": tea.KeyLeft, "right": tea.KeyRight, "pgup": tea.KeyPgUp, "pgdown": tea.KeyPgDown,
		"home": tea.KeyHome, "end": tea.KeyEnd, "tab": tea.KeyTab, "shift+tab": tea.KeyShiftTab,
		"backspace": tea.KeyBackspace, "ctrl+c": tea.KeyCtrlC,
	}
	if t, ok := named[n]; ok {
		return tea.KeyMsg{Type: t}
	}
	if n == "space" {
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(n)}
}

// until feeds queued messages to Update until cond holds (checked before
// each message), failing the test after a few seconds.
func (h *harness) until(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case msg := <-h.msgs:
			h.send(msg)
		case <-tick.C:
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s; screen:\n%s", what, h.m.View())
		}
	}
}

// recv waits for a value on ch while feeding messages to Update.
func recv[T any](h *harness, ch <-chan T) T {
	h.t.Helper()
	var v T
	got := false
	h.until("a value", func() bool {
		if got {
			return true
		}
		select {
		case v = <-ch:
			got = true
		default:
		}
		return got
	})
	return v
}

// settle feeds messages until none has arrived for a while.
func (h *harness) settle() {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case msg := <-h.msgs:
			h.send(msg)
		case <-time.After(80 * time.Millisecond):
			return
		case <-deadline:
			h.t.Fatal("messages keep coming")
		}
	}
}

// waitMsg feeds messages until one of msg's type arrives (and feeds it).
func (h *harness) waitMsg(sample tea.Msg) {
	h.t.Helper()
	want := reflect.TypeOf(sample)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case msg := <-h.msgs:
			h.send(msg)
			if reflect.TypeOf(msg) == want {
				return
			}
		case <-deadline:
			h.t.Fatalf("timed out waiting for a %v", want)
		}
	}
}

func (h *harness) quitted() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.quit
}

// fakeSource is a BindingsSource the test controls.
type fakeSource struct {
	name string

	mu     sync.Mutex
	view   *tracker.View
	health Health
	closed []tracker.Binding
	ch     chan struct{}
}

func newFakeSource(name string, bs []tracker.Binding) *fakeSource {
	f := &fakeSource{name: name, ch: make(chan struct{}, 1), health: Health{HealthOK, "live"}}
	f.set(bs)
	return f
}

func (f *fakeSource) signal() {
	select {
	case f.ch <- struct{}{}:
	default:
	}
}

func (f *fakeSource) set(bs []tracker.Binding) {
	f.mu.Lock()
	seq := uint64(1)
	if f.view != nil {
		seq = f.view.Seq + 1
	}
	v := &tracker.View{Time: testNow, Seq: seq}
	v.Host, v.Bindings = "host1", bs
	f.view = v
	f.mu.Unlock()
	f.signal()
}

func (f *fakeSource) setHealth(h Health) {
	f.mu.Lock()
	f.health = h
	f.mu.Unlock()
	f.signal()
}

func (f *fakeSource) Name() string { return f.name }

func (f *fakeSource) Current() *tracker.View {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view
}

func (f *fakeSource) Wait(ctx context.Context) error {
	select {
	case <-f.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeSource) Health() Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeSource) Closed(context.Context, time.Time, time.Time) ([]tracker.Binding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tracker.Binding(nil), f.closed...), nil
}

// genBindings returns n varied bindings, the same for the same n.
func genBindings(n int) []tracker.Binding {
	names := []string{"nginx", "sshd", "postgres", "firefox", "chronyd", "systemd-resolve", "redis-server", "curl", "python3", "Web Content"}
	users := []string{"www-data", "root", "postgres", "alice", "_chrony", "systemd-resolve", "redis", "bob", "carol", "alice"}
	procs := make([]*tracker.Process, len(names))
	for i, nm := range names {
		procs[i] = &tracker.Process{PID: int32(100 + 37*i), Name: nm, Comm: nm, User: users[i], UID: uint32(1000 + i),
			StartTime: testNow.Add(-24 * time.Hour)}
	}
	bs := make([]tracker.Binding, 0, n)
	for i := 0; i < n; i++ {
		p := procs[i%len(procs)]
		b := tracker.Binding{Owner: p, Host: "host1", From: testNow.Add(-time.Duration(i%3600) * time.Second)}
		b.Proto = tracker.ProtoTCP
		if i%4 == 3 {
			b.Proto = tracker.ProtoUDP
		}
		la := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if i%5 == 4 {
			la = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i))
		}
		switch {
		case i%10 == 0:
			b.Local = netip.AddrPortFrom(la, uint16(22+i%3))
			b.State = tracker.StateListen
			if b.Proto == tracker.ProtoUDP {
				b.State = tracker.StateUnconn
			}
		default:
			b.Local = netip.AddrPortFrom(la, uint16(32768+i%28000))
			b.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 251)}), uint16([]int{443, 80, 22, 53, 5432}[i%5]))
			b.State = tracker.StateEstablished
		}
		bs = append(bs, b)
	}
	return bs
}

// copyFixture copies a fixture to dir/rel.
func copyFixture(t testing.TB, name, dir, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures.Dir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// flowDir builds a flow directory in nfcapd's -S 1 layout from fixtures.
func flowDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	copyFixture(t, "v9-mixed.lz4.nf", dir, "2023/11/14/nfcapd.202311142210")
	copyFixture(t, "v9-alluser.bz2.nf", dir, "2023/11/14/nfcapd.202311142215")
	copyFixture(t, "v9-multiblock.lzo.nf", dir, "2023/11/15/nfcapd.202311150100")
	copyFixture(t, "softflowd-v9.lzo.nf", dir, "2026/11/28/nfcapd.202611280535")
	return dir
}

// sampleBindings is the repository's sample bindings file.
func sampleBindings(t testing.TB) enrich.Source {
	t.Helper()
	root, err := fixtures.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return enrich.NewBindingsFile(filepath.Join(root, "testdata", "flows", "bindings.json"))
}

// screenText is the model's view with trailing blanks trimmed per line.
func screenText(m *Model) string {
	lines := strings.Split(m.View(), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return strings.Join(lines, "\n")
}

func mouseWheel(up bool) tea.MouseMsg {
	b := tea.MouseButtonWheelDown
	if up {
		b = tea.MouseButtonWheelUp
	}
	return tea.MouseMsg{Button: b, Action: tea.MouseActionPress}
}

func mouseClick(x, y int) tea.MouseMsg {
	return tea.MouseMsg{X: x, Y: y, Button: tea.MouseButtonLeft, Action: tea.MouseActionPress}
}

func writeFile(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
