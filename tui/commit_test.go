package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	// Closing the dialog does not claim labels were written.
	h.keys("enter")
	h.until("closed", func() bool { return h.m.commit == nil })
	if strings.Contains(h.m.flash, "written") {
		t.Errorf("status line after an unchanged commit: %q", h.m.flash)
	}
	if h.m.files.marked[b] {
		t.Error("the committed file is still marked")
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

// TestCommitError: a file that fails while it is written (damaged after
// its dry run) is reported and left as it was; the others are written.
func TestCommitError(t *testing.T) {
	dir := flowDir(t)
	bad := filepath.Join(dir, "2023/11/15/nfcapd.202311150100")
	data := readBytes(t, bad)
	good := filepath.Join(dir, "2026/11/28/nfcapd.202611280535")
	eo := enrich.Options{Sources: []enrich.Source{sampleBindings(t)}}
	h := newHarness(t, Options{Dir: dir, Enrich: eo})
	h.until("listing", func() bool { return !h.m.files.listing })
	h.send(openCommitMsg{[]string{bad, good}})
	d := h.m.commit
	h.until("rates", func() bool { return d.files[0].rate != nil && d.files[1].rate != nil })
	writeFile(t, bad, data[:len(data)-5000]) // cut into the appendix and last block
	before := readBytes(t, bad)
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

// TestCommitSkipsUnreadable: the files known to be unreadable (from the
// listing, or from their dry run) are not counted as files to rewrite,
// the dialog says they are skipped, and they are: the others are written.
func TestCommitSkipsUnreadable(t *testing.T) {
	const (
		good  = "2026/11/28/nfcapd.202611280535"
		good2 = "2023/11/14/nfcapd.202311142210"
		text  = "2024/01/01/nfcapd.202401010000" // not an nfdump file
		cut   = "2024/01/01/nfcapd.202401010005" // damaged at the end
	)
	for _, tc := range []struct {
		name    string
		files   []string
		listed  bool   // the dialog knows what the listing read of the headers
		confirm string // the question
		done    string // the result, after enter; "" when enter writes nothing
		written int
	}{
		{"one of two unreadable", []string{good, text}, true,
			"Rewrite 1 file in place (atomically), skipping 1 unreadable one?", "1 written, 0 failed, 0 not written, 1 unreadable skipped", 1},
		{"found by the dry run", []string{good, good2, cut, text}, false,
			"Rewrite 2 files in place (atomically), skipping 2 unreadable ones?", "2 written, 0 failed, 0 not written, 2 unreadable skipped", 2},
		{"none readable", []string{text, cut}, true,
			"Nothing to rewrite: all 2 files are unreadable.", "", 0},
		{"the only one unreadable", []string{text}, false,
			"Nothing to rewrite: the file is unreadable.", "", 0},
		{"all readable", []string{good, good2}, true,
			"Rewrite 2 files in place (atomically)?", "2 written, 0 failed, 0 not written", 2},
		{"one readable", []string{good}, true,
			"Rewrite 1 file in place (atomically)?", "1 written, 0 failed, 0 not written", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := flowDir(t)
			writeFile(t, filepath.Join(dir, text), []byte("not an nfdump file at all, just text"))
			data := readBytes(t, filepath.Join(dir, "2023/11/15/nfcapd.202311150100"))
			writeFile(t, filepath.Join(dir, cut), data[:len(data)-5000])
			before := map[string][]byte{}
			var paths []string
			for _, f := range tc.files {
				p := filepath.Join(dir, f)
				paths = append(paths, p)
				before[p] = readBytes(t, p)
			}
			eo := enrich.Options{Sources: []enrich.Source{sampleBindings(t)}}
			h := newHarness(t, Options{Dir: dir, Enrich: eo})
			h.until("listing", func() bool { return !h.m.files.listing })
			h.until("headers", func() bool { // every row is on screen
				for _, p := range paths {
					if e := h.m.c.cache.peek(p); e == nil || !e.metaKnown {
						return false
					}
				}
				return true
			})
			if !tc.listed { // leave it to the dry runs
				for _, p := range paths {
					h.m.c.cache.forget(p)
				}
			}
			h.send(openCommitMsg{paths})
			d := h.m.commit
			if n, bad := d.counts(); tc.listed && bad != len(tc.files)-tc.written {
				t.Errorf("the dialog opens with %d files to write and %d unreadable: the listing knew", n, bad)
			}
			h.until("rates", func() bool {
				for _, f := range d.files {
					if f.rate == nil && f.rateErr == nil {
						return false
					}
				}
				return true
			})
			txt := screenText(h.m)
			if !strings.Contains(txt, tc.confirm) || strings.Contains(txt, "file(s)") {
				t.Fatalf("dialog lacks %q:\n%s", tc.confirm, txt)
			}
			// The error under a file's name, without its path, to
			// leave room for the reason.
			const why = "      file header at offset 0: magic 0x6f6e, want 0xa50c: not an nfdump file (bad magic)"
			if slices.Contains(tc.files, text) && !strings.Contains(txt, why) || strings.Contains(txt, dir) {
				t.Errorf("dialog lacks %q or shows a path:\n%s", why, txt)
			}
			h.keys("enter")
			if tc.done == "" {
				h.until("dialog closed", func() bool { return h.m.commit == nil })
			} else {
				h.until("done", func() bool { return d.phase == phaseDone })
				txt = screenText(h.m)
				if !strings.Contains(txt, tc.done+" · ") || strings.Count(txt, "✗ unreadable (skipped)") != len(tc.files)-tc.written {
					t.Errorf("result, want %q:\n%s", tc.done, txt)
				}
				h.keys("enter")
				h.until("dialog closed", func() bool { return h.m.commit == nil })
			}
			changed := 0
			for _, p := range paths {
				if !bytes.Equal(readBytes(t, p), before[p]) {
					changed++
				}
			}
			if changed != tc.written {
				t.Errorf("%d files changed, want %d", changed, tc.written)
			}
		})
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

func TestFileUnreadable(t *testing.T) {
	dir := flowDir(t)
	p := filepath.Join(dir, "2023/11/14/nfcapd.202311142210")
	gone := filepath.Join(dir, "nfcapd.202401010000")
	for _, tc := range []struct {
		name string
		path string
		err  error
		want bool
	}{
		{"not an nfdump file", p, &nfcap.FormatError{File: p, Err: nfcap.ErrBadMagic}, true},
		{"file not readable", p, &fs.PathError{Op: "open", Path: p, Err: fs.ErrPermission}, true},
		{"file gone", gone, &fs.PathError{Op: "open", Path: gone, Err: fs.ErrNotExist}, true},
		{"bindings file not readable", p, fmt.Errorf("bindings from b.json: %w",
			&fs.PathError{Op: "open", Path: "b.json", Err: fs.ErrPermission}), false},
		{"tracker down", p, errors.New("bindings from http://t: connection refused"), false},
	} {
		if got := fileUnreadable(tc.path, tc.err); got != tc.want {
			t.Errorf("%s: fileUnreadable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
