package tui

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

// fileNames lists the rows of the files screen: names, with day rows as
// "== day".
func fileNames(s *filesScreen) []string {
	var out []string
	for _, it := range s.items {
		if it.kind == itemDay {
			out = append(out, "== "+it.name)
			continue
		}
		out = append(out, it.name)
	}
	return out
}

func TestFilesListingAndMeta(t *testing.T) {
	dir := flowDir(t)
	h := newHarness(t, Options{Dir: dir})
	s := h.m.files
	h.until("listing", func() bool { return !s.listing })
	want := []string{"..", "2023/", "2026/",
		"== 2026-11-28 Sat", "2026/11/28/nfcapd.202611280535",
		"== 2023-11-15 Wed", "2023/11/15/nfcapd.202311150100",
		"== 2023-11-14 Tue", "2023/11/14/nfcapd.202311142215", "2023/11/14/nfcapd.202311142210"}
	if diff := cmp.Diff(want, fileNames(s)); diff != "" {
		t.Fatalf("rows (-want +got):\n%s", diff)
	}
	if it := s.selected(); it == nil || it.name != "2026/11/28/nfcapd.202611280535" {
		t.Fatalf("cursor not on the newest file: %+v", it)
	}
	// Headers first, then the username counts, file by file.
	users := map[string]int64{
		"nfcapd.202611280535": 0, "nfcapd.202311150100": 3354, "nfcapd.202311142215": 290, "nfcapd.202311142210": 377,
	}
	records := map[string]int64{
		"nfcapd.202611280535": 22, "nfcapd.202311150100": 7000, "nfcapd.202311142215": 300, "nfcapd.202311142210": 1500,
	}
	h.until("usernames counted", func() bool {
		for _, it := range s.items {
			if it.kind != itemFile {
				continue
			}
			if e := h.m.c.cache.peek(it.path); e == nil || !e.usersKnown {
				return false
			}
		}
		return true
	})
	for _, it := range s.items {
		if it.kind != itemFile {
			continue
		}
		e := h.m.c.cache.peek(it.path)
		base := filepath.Base(it.path)
		if e.err != nil || e.usersErr != nil || e.users != users[base] || e.records != records[base] {
			t.Errorf("%s: %+v, want %d records, %d usernames", base, e, records[base], users[base])
		}
	}
	txt := screenText(h.m)
	for _, w := range []string{"22:13:20–22:15:48", "1500", "lz4", "377", "7000", "3354", "lzo", "bz2"} {
		if !strings.Contains(txt, w) {
			t.Errorf("screen lacks %q:\n%s", w, txt)
		}
	}
}

func TestFilesNavigateAndMark(t *testing.T) {
	dir := flowDir(t)
	h := newHarness(t, Options{Dir: dir})
	s := h.m.files
	h.until("listing", func() bool { return !s.listing })
	// Up from the first file skips the day row onto 2026/.
	h.keys("up")
	if it := s.selected(); it.name != "2026/" {
		t.Fatalf("up: on %q", it.name)
	}
	h.keys("enter")
	h.until("2026/", func() bool { return !s.listing && s.dir == filepath.Join(dir, "2026") })
	if diff := cmp.Diff([]string{"..", "11/", "== 2026-11-28 Sat", "11/28/nfcapd.202611280535"}, fileNames(s)); diff != "" {
		t.Fatalf("in 2026 (-want +got):\n%s", diff)
	}
	h.keys("left") // parent: back on 2026/
	h.until("back", func() bool { return !s.listing && s.dir == dir })
	if it := s.selected(); it.name != "2026/" {
		t.Fatalf("back in the parent on %q, want 2026/", it.name)
	}
	// Mark two files with space (it moves down), then commit.
	h.keys("down", "space", "down")
	if it := s.selected(); it.name != "2023/11/14/nfcapd.202311142215" {
		t.Fatalf("on %q", it.name)
	}
	h.keys("space")
	if len(s.marked) != 2 || !strings.Contains(screenText(h.m), "2 marked") {
		t.Fatalf("marked %v", s.marked)
	}
	got := s.commitPaths()
	want := []string{filepath.Join(dir, "2023/11/14/nfcapd.202311142215"), filepath.Join(dir, "2026/11/28/nfcapd.202611280535")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("commit paths (-want +got):\n%s", diff)
	}
	h.keys("a") // not all marked: marks all
	if len(s.marked) != 4 {
		t.Fatalf("a marked %d", len(s.marked))
	}
	h.keys("a") // all marked: unmarks all
	if len(s.marked) != 0 {
		t.Fatalf("a a left %d marked", len(s.marked))
	}
	// With none marked, c commits the selected file.
	if got := s.commitPaths(); len(got) != 1 || filepath.Base(got[0]) != "nfcapd.202311142210" {
		t.Fatalf("commit paths with none marked: %v", got)
	}
	h.keys("G")
	if it := s.selected(); it.name != "2023/11/14/nfcapd.202311142210" {
		t.Fatalf("G: on %q", it.name)
	}
	h.keys("g")
	if it := s.selected(); it.name != ".." {
		t.Fatalf("g: on %q", it.name)
	}
}

// TestFilesUnreadable: a file that cannot be read shows why in its row,
// in words that fit (the error itself starts with the path, which filled
// the column), and the whole error in the footer when selected.
func TestFilesUnreadable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		data   func(t *testing.T) []byte
		reason string // in the row
		size   string
		detail string // in the footer, after the file name
	}{
		{
			name:   "text",
			data:   func(*testing.T) []byte { return []byte("not an nfdump file at all, just text") },
			reason: "unreadable: not an nfdump file",
			size:   "36 B",
			detail: "nfcapd.202401010000: file header at offset 0: magic 0x6f6e, want 0xa50c: not an nfdump file (bad magic)",
		},
		{
			name: "cut short",
			data: func(t *testing.T) []byte {
				return readBytes(t, filepath.Join(fixtures.Dir(t), "v9-mixed.lz4.nf"))[:100]
			},
			reason: "unreadable: corrupt",
			size:   "100 B",
			detail: "nfcapd.202401010000: file header at offset 24: appendix offset",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := flowDir(t)
			bad := filepath.Join(dir, "nfcapd.202401010000")
			writeFile(t, bad, tc.data(t))
			h := newHarness(t, Options{Dir: dir})
			s := h.m.files
			h.until("meta", func() bool {
				e := h.m.c.cache.peek(bad)
				return e != nil && e.metaKnown
			})
			var row string
			for _, l := range strings.Split(screenText(h.m), "\n") {
				if strings.Contains(l, "nfcapd.202401010000") {
					row = l
				}
			}
			if !strings.Contains(row, " nfcapd.202401010000 ") || !strings.Contains(row, tc.reason+" ") ||
				!strings.HasSuffix(row, " "+tc.size) || strings.Contains(row, dir) {
				t.Errorf("row %q, want the name, %q and %s", row, tc.reason, tc.size)
			}
			h.keys("g")
			for range s.items {
				if s.selected().path == bad {
					break
				}
				h.keys("down")
			}
			lines := strings.Split(screenText(h.m), "\n")
			if footer := lines[len(lines)-2]; !strings.HasPrefix(footer, " "+tc.detail) {
				t.Errorf("footer %q, want %q", footer, tc.detail)
			}
		})
	}
}

func TestShortReason(t *testing.T) {
	const p = "/tmp/flows/nfcapd.202401010000"
	format := func(err error) error {
		return &nfcap.FormatError{File: p, Block: nfcap.BlockNone, RecordOffset: -1, Err: fmt.Errorf("magic 0x6f6e: %w", err)}
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&fs.PathError{Op: "stat", Path: p, Err: syscall.ENOENT}, "file gone"},
		{&fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}, "permission denied"},
		{&fs.PathError{Op: "read", Path: p, Err: syscall.EISDIR}, "is a directory"},
		{&fs.PathError{Op: "read", Path: p, Err: syscall.EIO}, "input/output error"},
		{format(nfcap.ErrBadMagic), "not an nfdump file"},
		{format(nfcap.ErrLegacyLayout), "nfdump 1.6 file"},
		{format(nfcap.ErrTruncated), "truncated"},
		{format(nfcap.ErrDecompress), "cannot decompress"},
		{format(nfcap.ErrUnsupportedCompression), "unknown compressor"},
		{fmt.Errorf("%s: not a regular file", p), "not a regular file"},
	} {
		got := shortReason(tc.err)
		if got != tc.want {
			t.Errorf("shortReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
		// "unreadable: " and the reason fit the WINDOW and RECORDS columns.
		if w := len("unreadable: ") + textWidth(got); w > fileCols[1].w+1+fileCols[2].w {
			t.Errorf("%q is %d cells wide", got, w)
		}
	}
}

func TestTimeWindow(t *testing.T) {
	d := func(day, h int) time.Time { return time.Date(2023, 11, day, h, 13, 20, 0, time.UTC) }
	for _, tc := range []struct {
		first, last time.Time
		want        string
	}{
		{d(14, 22), d(14, 23), "22:13:20–23:13:20"},
		{d(14, 22), d(15, 1), "22:13:20–01:13:20+1d"},
		{d(14, 22), d(16, 6), "22:13:20–06:13:20+2d"},
	} {
		if got := timeWindow(tc.first, tc.last); got != tc.want {
			t.Errorf("timeWindow(%v, %v) = %q, want %q", tc.first, tc.last, got, tc.want)
		}
	}
}

// TestFilesReloadSeesChangedFile: a file changed by another process
// (enriched, or replaced by another file) shows its new contents after a
// reload, and the commit dialog does not offer the old match rate.
func TestFilesReloadSeesChangedFile(t *testing.T) {
	dir := flowDir(t)
	a := filepath.Join(dir, "2023/11/14/nfcapd.202311142215") // 300 records, 290 usernames
	b := filepath.Join(dir, "2023/11/15/nfcapd.202311150100") // 7000 records
	h := newHarness(t, Options{Dir: dir, Enrich: enrich.Options{Sources: []enrich.Source{sampleBindings(t)}}})
	s := h.m.files
	h.until("listing", func() bool { return !s.listing })
	counted := func(want int64) func() bool {
		return func() bool {
			e := h.m.c.cache.peek(a)
			return e != nil && e.usersKnown && e.records == want
		}
	}
	h.until("usernames counted", counted(300))
	data, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h.keys("r")
	h.until("the new contents counted", counted(7000))
	if e := h.m.c.cache.peek(a); e.users != 3354 {
		t.Errorf("after the reload: %d usernames, want 3354", e.users)
	}
	// Changed again, without a reload: the commit dialog checks.
	h.m.c.cache.peek(a).summary = &enrich.Summary{Flows: 1}
	if err := os.WriteFile(a, data[:len(data)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	d := newCommitDialog(h.m.c, 0, dir, []string{a})
	if d.files[0].rate != nil {
		t.Error("the commit dialog offers the match rate of the file as it was")
	}
}
