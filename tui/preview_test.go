package tui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
	"github.com/netdumper/netdumper/tracker"
)

// expectedLines returns the fixture's nfdump output, one record a line.
func expectedLines(t *testing.T, fixture string) []string {
	t.Helper()
	data, err := os.ReadFile(fixtures.Expected(filepath.Join(fixtures.Dir(t), fixture)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// checkRows compares the loaded rows on screen with nfdump's output.
func checkRows(t *testing.T, s *previewScreen, want []string) {
	t.Helper()
	from, to := s.nav.visible()
	for n := from; n < to; n++ {
		i := n - s.winFrom
		if i < 0 || i >= len(s.win) {
			t.Fatalf("record %d on screen is not loaded (window %d+%d)", n, s.winFrom, len(s.win))
		}
		r := s.win[i]
		if got := r.line + " " + r.uname; got != want[n] {
			t.Fatalf("record %d:\n got %q\nwant %q", n+1, got, want[n])
		}
	}
}

// loaded reports whether every row on screen is loaded.
func loaded(s *previewScreen) bool {
	from, to := s.nav.visible()
	return s.prog.done && from >= s.winFrom && to <= s.winFrom+len(s.win)
}

func TestPreviewPagesLikeNfdump(t *testing.T) {
	// Without bindings, a preview shows each record as nfdump prints it
	// now (usernames kept, the rest <empty>), across the block boundary
	// of this two-block file.
	dir := flowDir(t)
	path := filepath.Join(dir, "2023/11/15/nfcapd.202311150100")
	want := expectedLines(t, "v9-multiblock.lzo.nf")
	h := newHarness(t, Options{Dir: dir, Start: "preview", PreviewFile: path})
	s := h.m.preview
	h.until("indexed", func() bool { return loaded(s) })
	if s.nav.n != len(want) || len(s.ff.blocks) != 2 {
		t.Fatalf("%d records in %d blocks, want %d in 2", s.nav.n, len(s.ff.blocks), len(want))
	}
	boundary := s.ff.blocks[1].first
	checkRows(t, s, want)
	for s.nav.offset+s.nav.height < boundary+s.nav.height {
		h.keys("pgdown")
		h.until("page", func() bool { return loaded(s) })
		checkRows(t, s, want)
	}
	h.keys("G")
	h.until("end", func() bool { return loaded(s) })
	if s.nav.cursor != len(want)-1 {
		t.Fatalf("G: cursor %d", s.nav.cursor)
	}
	checkRows(t, s, want)
	h.keys("pgup", "up", "up")
	h.until("page", func() bool { return loaded(s) })
	checkRows(t, s, want)
	h.keys("g")
	h.until("start", func() bool { return loaded(s) })
	if s.nav.cursor != 0 {
		t.Fatalf("g: cursor %d", s.nav.cursor)
	}
	checkRows(t, s, want)
	txt := screenText(h.m)
	if !strings.Contains(txt, "records 1–22 of 7000") || !strings.Contains(txt, "3354 already named") {
		t.Errorf("header or footer:\n%s", txt)
	}
}

func TestPreviewLabels(t *testing.T) {
	dir := flowDir(t)
	path := filepath.Join(dir, "2023/11/14/nfcapd.202311142210")
	eo := enrich.Options{Sources: []enrich.Source{sampleBindings(t)}}
	h := newHarness(t, Options{Dir: dir, Start: "preview", PreviewFile: path, Enrich: eo})
	s := h.m.preview
	h.until("indexed", func() bool { return loaded(s) && s.prog.summary != nil })

	// The statistics are the dry run's.
	job, err := enrich.NewJob(eo)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	sum, err := job.DryRun(context.Background(), path, func(f *nfcap.Flow, u string) bool {
		if u == "" {
			u = "<empty>"
		}
		want = append(want, u)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	got := s.prog.summary
	if got.Flows != sum.Flows || got.Exact != sum.Exact || got.Listener != sum.Listener || got.Wildcard != sum.Wildcard ||
		got.Unmatched != sum.Unmatched || sum.Exact == 0 || sum.Listener == 0 || sum.Wildcard == 0 {
		t.Fatalf("preview statistics %+v, dry run %+v", got, sum)
	}
	// Every row shows the username the dry run gives, with a letter that
	// says why.
	marks := map[byte]int{}
	seen := map[int]bool{}
	for n := 0; n < s.nav.n; n += s.nav.height {
		s.nav.offset, s.nav.cursor = min(n, s.nav.n-s.nav.height), n
		h.run(s.ensureRows())
		h.until("rows", func() bool { return loaded(s) })
		from, to := s.nav.visible()
		for i := from; i < to; i++ {
			if seen[i] {
				continue
			}
			seen[i] = true
			r := s.win[i-s.winFrom]
			if r.uname != want[i] {
				t.Fatalf("record %d: username %q, dry run %q", i+1, r.uname, want[i])
			}
			switch r.mark {
			case markNone:
				if r.uname != "<empty>" {
					t.Fatalf("record %d: mark - with %q", i+1, r.uname)
				}
			case markExact, markListener, markWildcard, markKept:
			default:
				t.Fatalf("record %d: mark %c", i+1, r.mark)
			}
			marks[r.mark]++
		}
	}
	total := marks[markExact] + marks[markListener] + marks[markWildcard] + marks[markKept] + marks[markNone]
	if marks[markExact] == 0 || marks[markListener] == 0 || marks[markWildcard] == 0 || marks[markKept] != 377 ||
		marks[markNone] > int(sum.Unmatched) || total != 1500 {
		t.Errorf("marks %v (unmatched %d)", marks, sum.Unmatched)
	}
	txt := screenText(h.m)
	for _, w := range []string{"matched 1424 of 1500 (94.9%)", "top unmatched: icmp 127.0.0.1 ×28", "bindings: "} {
		if !strings.Contains(txt, w) {
			t.Errorf("header lacks %q:\n%s", w, txt)
		}
	}
}

func TestPreviewUnknownAndOverwrite(t *testing.T) {
	dir := flowDir(t)
	path := filepath.Join(dir, "2023/11/14/nfcapd.202311142210")
	unknown, err := enrich.ParseTemplate("{service}***")
	if err != nil {
		t.Fatal(err)
	}
	eo := enrich.Options{Sources: []enrich.Source{sampleBindings(t)}, Unknown: unknown, Overwrite: true}
	h := newHarness(t, Options{Dir: dir, Start: "preview", PreviewFile: path, Enrich: eo})
	s := h.m.preview
	h.until("indexed", func() bool { return loaded(s) })
	marks := map[byte]int{}
	for _, r := range s.win {
		marks[r.mark]++
		if r.mark == markUnknown && !strings.HasSuffix(r.uname, "***") {
			t.Errorf("unknown row %q", r.uname)
		}
	}
	if marks[markUnknown] == 0 || marks[markNone] != 0 {
		t.Errorf("with --overwrite and --unknown, marks %v", marks)
	}
	if !strings.Contains(screenText(h.m), `unmatched: "{service}***" · existing usernames overwritten`) {
		t.Errorf("policy line:\n%s", screenText(h.m))
	}
}

func TestPreviewSearch(t *testing.T) {
	dir := flowDir(t)
	path := filepath.Join(dir, "2023/11/15/nfcapd.202311150100")
	want := expectedLines(t, "v9-multiblock.lzo.nf")
	h := newHarness(t, Options{Dir: dir, Start: "preview", PreviewFile: path})
	s := h.m.preview
	h.until("indexed", func() bool { return loaded(s) })
	// The hits for a username, in file order.
	q := "thunderbird"
	var hits []int
	for i, l := range want {
		if strings.Contains(strings.ToLower(l), q) {
			hits = append(hits, i)
		}
	}
	if len(hits) < 3 {
		t.Fatalf("fixture has %d %q records", len(hits), q)
	}
	h.keys("/")
	h.typeText("ThunderBird")
	h.keys("enter")
	h.waitMsg(searchDoneMsg{})
	if s.nav.cursor != hits[0] {
		t.Fatalf("search: cursor %d, want %d (%s)", s.nav.cursor, hits[0], s.searchMsg)
	}
	h.keys("n")
	h.waitMsg(searchDoneMsg{})
	if s.nav.cursor != hits[1] {
		t.Fatalf("n: cursor %d, want %d", s.nav.cursor, hits[1])
	}
	h.keys("N")
	h.waitMsg(searchDoneMsg{})
	h.keys("N")
	h.waitMsg(searchDoneMsg{})
	if s.nav.cursor != hits[len(hits)-1] {
		t.Fatalf("N N: cursor %d, want %d (wrapped)", s.nav.cursor, hits[len(hits)-1])
	}
	h.until("rows", func() bool { return loaded(s) })
	checkRows(t, s, want)
	h.keys("/")
	h.typeText("no-such-text")
	h.keys("enter")
	h.waitMsg(searchDoneMsg{})
	if !strings.Contains(s.searchMsg, "not found in 7000 records") {
		t.Fatalf("search message %q", s.searchMsg)
	}
}

func TestPreviewHorizontalScroll(t *testing.T) {
	dir := flowDir(t)
	path := filepath.Join(dir, "2023/11/14/nfcapd.202311142210")
	h := newHarness(t, Options{Dir: dir, Start: "preview", PreviewFile: path})
	s := h.m.preview
	h.until("indexed", func() bool { return loaded(s) })
	h.keys("right", "right", "right", "right", "right", "right", "right", "right", "right", "right")
	lines := strings.Split(screenText(h.m), "\n")
	// Scrolled to the last column, row 1 shows the end of record 1 (the
	// flow count) and its username.
	if !strings.HasSuffix(lines[6], "    1 <empty>") || strings.Contains(lines[6], "2023-11-14") {
		t.Errorf("scrolled row: %q", lines[6])
	}
	h.keys("left", "left", "left", "left", "left", "left", "left", "left", "left", "left", "left")
	if s.xoff != 0 {
		t.Errorf("xoff %d", s.xoff)
	}
}

func TestFlowFileBlocks(t *testing.T) {
	// Reading each block on its own gives the records of a plain read.
	path := filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf")
	ff, err := openFlowFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.close()
	ff.runIndex(context.Background(), nil, func() {})
	if p := ff.progress(); !p.done || p.err != nil || p.flows != 7000 || p.users != 3354 {
		t.Fatalf("index: %+v", p)
	}
	n := checkIndexedRecords(t, ff, path)
	if _, ok := ff.blockOf(n); ok {
		t.Error("a block past the end")
	}
}

func TestPreviewBadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nfcapd.202311142210")
	data, err := os.ReadFile(filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf"))
	if err != nil {
		t.Fatal(err)
	}
	// Cut the file in its second block: the first pages still show, the
	// header says where reading stopped.
	writeFile(t, path, data[:len(data)*3/4])
	h := newHarness(t, Options{Dir: dir, Start: "preview", PreviewFile: path})
	s := h.m.preview
	h.until("failed", func() bool { return s.err != nil || (s.prog.done && s.prog.err != nil) })
	txt := screenText(h.m)
	if !strings.Contains(txt, path) {
		t.Errorf("the error does not name the file:\n%s", txt)
	}
}

// countingSource counts how often the bindings are asked for.
type countingSource struct {
	enrich.Source
	n atomic.Int32
}

func (c *countingSource) Add(ctx context.Context, ib *tracker.IndexBuilder, from, to time.Time) error {
	c.n.Add(1)
	return c.Source.Add(ctx, ib, from, to)
}

// TestPreviewAsksForBindingsOnce: opening, counting and searching a file
// ask the sources once (a tracker that does not answer costs its timeout
// once, and never blocks the screen on a search).
func TestPreviewAsksForBindingsOnce(t *testing.T) {
	dir := flowDir(t)
	path := filepath.Join(dir, "2023/11/15/nfcapd.202311150100")
	src := &countingSource{Source: sampleBindings(t)}
	h := newHarness(t, Options{Dir: dir, Start: "preview", PreviewFile: path, Enrich: enrich.Options{Sources: []enrich.Source{src}}})
	s := h.m.preview
	h.until("indexed", func() bool { return loaded(s) })
	h.keys("/")
	h.typeText("thunderbird")
	h.keys("enter")
	h.waitMsg(searchDoneMsg{})
	if n := src.n.Load(); n != 1 {
		t.Errorf("the bindings were asked for %d times, want once", n)
	}
	if st := s.prog.summary; st == nil || st.Matched() == 0 {
		t.Errorf("no match statistics from the counting pass: %+v", st)
	}
}

// TestPreviewDamagedBlock: a block damaged after some whole records
// shows those records (as nfdump prints them), and the index pass says
// where the damage is.
func TestPreviewDamagedBlock(t *testing.T) {
	path, off := fixtures.DamagedRecord(t, "v9-mixed.none.nf", 700)
	ff, err := openFlowFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.close()
	ff.runIndex(context.Background(), nil, func() {})
	p := ff.progress()
	wantErr := fmt.Sprintf("%s: block 0 at offset 40: record at payload offset %d", path, off)
	if p.flows != 699 || p.err == nil || !strings.Contains(p.err.Error(), wantErr) {
		t.Fatalf("indexed %d flows, err %v; want 699 and an error with %q", p.flows, p.err, wantErr)
	}
	for n := 0; n < p.flows; n++ {
		bi, ok := ff.blockOf(n)
		if !ok {
			t.Fatalf("flow %d: no block", n)
		}
		if _, err := ff.block(bi); err != nil {
			t.Fatalf("flow %d of %d is indexed but cannot be shown: %v", n, p.flows, err)
		}
	}
}

func TestFlowFileReplacedWhileOpening(t *testing.T) {
	// The file is replaced (renamed over, as a commit or netdumper enrich
	// does) after the preview opened it and before its index pass ran:
	// the index and the pages are of the file that was opened, not a mix
	// of both.
	dir := t.TempDir()
	path := copyFixture(t, "v9-multiblock.lzo.nf", dir, "nfcapd.202311150100")
	ff, err := openFlowFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.close()
	other := copyFixture(t, "v9-mixed.lz4.nf", dir, "other")
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	ff.runIndex(context.Background(), nil, func() {})
	if p := ff.progress(); !p.done || p.err != nil || p.flows != 7000 {
		t.Fatalf("index: %+v, want the 7000 records of the file opened", p)
	}
	checkIndexedRecords(t, ff, filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf"))
}

// checkIndexedRecords reads the flow records of the file at path and wants
// each, byte for byte, where ff's index puts it; it returns how many.
func checkIndexedRecords(t *testing.T, ff *flowFile, path string) int {
	t.Helper()
	r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for r.Next() {
		rec := r.Record()
		if rec.Type != nfcap.RecordTypeV3 {
			continue
		}
		bi, ok := ff.blockOf(n)
		if !ok {
			t.Fatalf("record %d: no block", n)
		}
		d, err := ff.block(bi)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.record(n - bi.first); string(got) != string(rec.Data) {
			t.Fatalf("record %d differs", n)
		}
		n++
	}
	return n
}

func TestPreviewSearchRestarted(t *testing.T) {
	// n pressed again while a search runs restarts it: the end of the
	// search it replaced neither says "cancelled" nor stops esc from
	// cancelling the one that runs.
	dir := flowDir(t)
	path := filepath.Join(dir, "2023/11/15/nfcapd.202311150100")
	h := newHarness(t, Options{Dir: dir, Start: "preview", PreviewFile: path})
	s := h.m.preview
	h.until("indexed", func() bool { return loaded(s) })
	s.query = "thunderbird"
	first := s.startSearch(1)
	second := s.startSearch(1)
	s.update(first())
	if !s.searchBusy || s.searchStop == nil || strings.Contains(s.searchMsg, "cancelled") {
		t.Fatalf("after the replaced search ended: busy %v, message %q", s.searchBusy, s.searchMsg)
	}
	s.update(second())
	if s.searchBusy || !strings.Contains(s.searchMsg, "at record") {
		t.Fatalf("after the search: busy %v, message %q", s.searchBusy, s.searchMsg)
	}
}
