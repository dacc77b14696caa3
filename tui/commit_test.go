package tui

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/nfcap"
	"github.com/netdumper/netdumper/tracker"
)

// usernames reads the usernames of a file's flows.
func usernames(t *testing.T, path string) []string {
	t.Helper()
	r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for f, err := range r.Flows() {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f.Username)
	}
	return out
}

// dryRunNames is what a run of eo writes into path, per flow.
func dryRunNames(t *testing.T, eo enrich.Options, path string) []string {
	t.Helper()
	job, err := enrich.NewJob(eo)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if _, err := job.DryRun(context.Background(), path, func(_ *nfcap.Flow, u string) bool {
		out = append(out, u)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCommitMarkedFiles(t *testing.T) {
	dir := flowDir(t)
	eo := enrich.Options{Sources: []enrich.Source{sampleBindings(t)}}
	a := filepath.Join(dir, "2023/11/14/nfcapd.202311142210")
	b := filepath.Join(dir, "2026/11/28/nfcapd.202611280535")
	wantA, wantB := dryRunNames(t, eo, a), dryRunNames(t, eo, b)
	h := newHarness(t, Options{Dir: dir, Enrich: eo})
	s := h.m.files
	h.until("listing", func() bool { return !s.listing })
	h.keys("space", "G", "space", "c") // the newest and the oldest file
	h.until("dialog", func() bool { return h.m.commit != nil })
	d := h.m.commit
	h.until("match rates", func() bool { return d.files[0].rate != nil && d.files[1].rate != nil })
	txt := screenText(h.m)
	for _, w := range []string{"Commit labels", "label {process}", "existing usernames kept", "bindings: ",
		"2023/11/14/nfcapd.202311142210", "1424 of 1500 records matched (94.9%)", "16 of 22 records matched (72.7%)"} {
		if !strings.Contains(txt, w) {
			t.Errorf("dialog lacks %q:\n%s", w, txt)
		}
	}
	h.keys("y")
	h.until("done", func() bool { return d.phase == phaseDone })
	for _, f := range d.files {
		if f.outcome != outcomeDone {
			t.Fatalf("%s: outcome %d, err %v", f.path, f.outcome, f.err)
		}
	}
	if !strings.Contains(screenText(h.m), "2 written, 0 failed") {
		t.Errorf("result:\n%s", screenText(h.m))
	}
	h.keys("enter")
	h.until("dialog closed", func() bool { return h.m.commit == nil })
	for p, want := range map[string][]string{a: wantA, b: wantB} {
		got := usernames(t, p)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: usernames after commit differ from the dry run", p)
		}
	}
	if len(s.marked) != 0 {
		t.Errorf("files still marked: %v", s.marked)
	}
	// The listing reloads, and the counts follow the new contents.
	h.until("recount", func() bool {
		e := h.m.c.cache.peek(a)
		return e != nil && e.usersKnown && !e.counting && e.users == 1424+int64(countKeptUnmatched(t, a))
	})
}

// TestCommitAlreadyLabelled: committing a file that already carries
// every label says so, and leaves the file as it was.
func TestCommitAlreadyLabelled(t *testing.T) {
	dir := flowDir(t)
	eo := enrich.Options{Sources: []enrich.Source{sampleBindings(t)}}
	b := filepath.Join(dir, "2026/11/28/nfcapd.202611280535")
	job, err := enrich.NewJob(eo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := job.Run(context.Background(), b, nil); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{Dir: dir, Enrich: eo})
	h.until("listing", func() bool { return !h.m.files.listing })
	h.keys("space", "c") // the newest file
	h.until("dialog", func() bool { return h.m.commit != nil })
	d := h.m.commit
	h.until("match rate", func() bool { return d.files[0].rate != nil })
	h.keys("y")
	h.until("done", func() bool { return d.phase == phaseDone })
	if f := d.files[0]; f.path != b || f.outcome != outcomeDone {
		t.Fatalf("%s: outcome %d, err %v", f.path, f.outcome, f.err)
	}
	if txt := screenText(h.m); !strings.Contains(txt, "✓ already labelled (file left as it was") ||
		!strings.Contains(txt, "0 written, 1 already labelled, 0 failed, 0 not written") {
		t.Errorf("result:\n%s", txt)
	}
	after, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("the file was replaced")
	}
}

// countKeptUnmatched counts the records of path that carry a username but
// are not matched (they keep it): after a commit every flow of the sample
// is either labelled or kept or ICMP.
func countKeptUnmatched(t *testing.T, path string) int {
	n := 0
	for _, u := range usernames(t, path) {
		if u != "" {
			n++
		}
	}
	return n - 1424
}

// gate is an enrich.Source whose Add blocks until released or cancelled.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

func (g *gate) Name() string { return "gate" }

func (g *gate) Add(ctx context.Context, _ *tracker.IndexBuilder, _, _ time.Time) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestCommitCancel(t *testing.T) {
	dir := flowDir(t)
	a := filepath.Join(dir, "2023/11/14/nfcapd.202311142210")
	b := filepath.Join(dir, "2023/11/14/nfcapd.202311142215")
	before := readBytes(t, b)
	g := &gate{entered: make(chan struct{}, 1), release: make(chan struct{})}
	eo := enrich.Options{Sources: []enrich.Source{sampleBindings(t), g}}
	h := newHarness(t, Options{Dir: dir, Enrich: eo})
	h.until("listing", func() bool { return !h.m.files.listing })
	h.send(openCommitMsg{[]string{a, b}})
	d := h.m.commit
	// Let the dry runs (for the rates) through, then hold the commit.
	recv(h, g.entered)
	g.release <- struct{}{}
	recv(h, g.entered)
	g.release <- struct{}{}
	h.until("rates", func() bool { return d.files[0].rate != nil && d.files[1].rate != nil })
	h.keys("enter")
	recv(h, g.entered)
	g.release <- struct{}{} // file a goes through
	recv(h, g.entered)      // file b waits for its bindings
	h.until("a done", func() bool { return d.files[0].outcome == outcomeDone })
	h.keys("esc")
	h.until("cancelled", func() bool { return d.phase == phaseDone })
	if d.files[1].outcome != outcomeCancelled {
		t.Fatalf("file b: outcome %d (%v)", d.files[1].outcome, d.files[1].err)
	}
	if !bytes.Equal(readBytes(t, b), before) {
		t.Fatal("cancelled file changed")
	}
	if txt := screenText(h.m); !strings.Contains(txt, "✗ cancelled (file untouched)") || !strings.Contains(txt, "1 written, 0 failed, 1 not written") {
		t.Errorf("dialog:\n%s", txt)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "2023/11/14/.*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	h.keys("esc")
	h.until("dialog closed", func() bool { return h.m.commit == nil })
}

func TestCommitError(t *testing.T) {
	dir := flowDir(t)
	bad := filepath.Join(dir, "2023/11/15/nfcapd.202311150100")
	data := readBytes(t, bad)
	writeFile(t, bad, data[:len(data)-5000]) // cut into the appendix and last block
	before := readBytes(t, bad)
	good := filepath.Join(dir, "2026/11/28/nfcapd.202611280535")
	eo := enrich.Options{Sources: []enrich.Source{sampleBindings(t)}}
	h := newHarness(t, Options{Dir: dir, Enrich: eo})
	h.until("listing", func() bool { return !h.m.files.listing })
	h.send(openCommitMsg{[]string{bad, good}})
	d := h.m.commit
	h.until("rates", func() bool { return d.files[0].rateErr != nil && d.files[1].rate != nil })
	h.keys("enter")
	h.until("done", func() bool { return d.phase == phaseDone })
	if d.files[0].outcome != outcomeFailed || d.files[1].outcome != outcomeDone {
		t.Fatalf("outcomes %d %d", d.files[0].outcome, d.files[1].outcome)
	}
	if !bytes.Equal(readBytes(t, bad), before) {
		t.Fatal("the damaged file changed")
	}
	txt := screenText(h.m)
	if !strings.Contains(txt, "1 written, 1 failed") || !strings.Contains(txt, "(file untouched)") {
		t.Errorf("dialog:\n%s", txt)
	}
}

func TestCommitConfirmCancelWritesNothing(t *testing.T) {
	dir := flowDir(t)
	a := filepath.Join(dir, "2023/11/14/nfcapd.202311142210")
	before := readBytes(t, a)
	h := newHarness(t, Options{Dir: dir, Enrich: enrich.Options{Sources: []enrich.Source{sampleBindings(t)}}})
	h.until("listing", func() bool { return !h.m.files.listing })
	h.keys("G", "c")
	h.until("dialog", func() bool { return h.m.commit != nil })
	h.keys("n")
	h.settle()
	if h.m.commit != nil || !bytes.Equal(readBytes(t, a), before) {
		t.Fatal("n did not cancel cleanly")
	}
}

func TestQuitDuringCommitWaits(t *testing.T) {
	dir := flowDir(t)
	a := filepath.Join(dir, "2023/11/14/nfcapd.202311142210")
	before := readBytes(t, a)
	g := &gate{entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := newHarness(t, Options{Dir: dir, Enrich: enrich.Options{Sources: []enrich.Source{g}}})
	h.until("listing", func() bool { return !h.m.files.listing })
	h.send(openCommitMsg{[]string{a}})
	recv(h, g.entered)
	g.release <- struct{}{} // the dry run
	h.keys("enter")
	recv(h, g.entered) // the commit waits
	h.keys("ctrl+c")
	if h.quitted() {
		t.Fatal("quit before the commit stopped")
	}
	h.until("quit", h.quitted)
	if !bytes.Equal(readBytes(t, a), before) {
		t.Fatal("file changed")
	}
}

// failingSource is an enrich.Source whose bindings cannot be had.
type failingSource struct{}

func (failingSource) Name() string { return "http://tracker.invalid" }

func (failingSource) Add(context.Context, *tracker.IndexBuilder, time.Time, time.Time) error {
	return errors.New("connection refused")
}

// TestCommitRateWithoutBindings: a dry run that fails for want of
// bindings does not call the file unreadable; a file that is not a flow
// file is.
func TestCommitRateWithoutBindings(t *testing.T) {
	dir := flowDir(t)
	a := filepath.Join(dir, "2023/11/14/nfcapd.202311142210")
	bad := filepath.Join(dir, "2023/11/14/nfcapd.202311142220")
	if err := os.WriteFile(bad, []byte("not a flow file"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{Dir: dir, Enrich: enrich.Options{Sources: []enrich.Source{failingSource{}}}})
	h.until("listing", func() bool { return !h.m.files.listing })
	h.send(openCommitMsg{[]string{a, bad}})
	d := h.m.commit
	h.until("rates", func() bool { return d.files[0].rateErr != nil && d.files[1].rateErr != nil })
	txt := screenText(h.m)
	if !strings.Contains(txt, "✗ no match rate") || strings.Count(txt, "✗ unreadable") != 1 {
		t.Errorf("dialog:\n%s", txt)
	}
}
