package tui

import (
	"strings"
	"testing"
)

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "0 files"},
		{1, "1 file"},
		{2, "2 files"},
		{11, "11 files"},
		{21, "21 files"},
	} {
		if got := count(tc.n, "file", "files"); got != tc.want {
			t.Errorf("count(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	if got := count(uint64(1), "entry", "entries"); got != "1 entry" {
		t.Errorf("count(uint64(1)) = %q", got)
	}
}

// TestCountsOnScreen: the counts the screens print agree with their
// number, for one and for several.
func TestCountsOnScreen(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    []string // fixtures copied into the flow directory
		bindings int
		want     []string // on the files screen, then on the bindings screen
		not      []string
	}{
		{
			name:     "one",
			files:    []string{"2026/11/28/nfcapd.202611280535"},
			bindings: 1,
			want:     []string{" · 1 file\n", "── 2026-11-28 Sat · 1 file · 673 B", " 1 binding · sort"},
			not:      []string{"1 files", "1 bindings"},
		},
		{
			name:     "several",
			files:    []string{"2026/11/28/nfcapd.202611280535", "2026/11/28/nfcapd.202611280540"},
			bindings: 2,
			want:     []string{" · 2 files\n", "── 2026-11-28 Sat · 2 files · 1.3 KiB", " 2 bindings · sort"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				copyFixture(t, "softflowd-v9.lzo.nf", dir, f)
			}
			src := newFakeSource("fake", genBindings(tc.bindings))
			h := newHarness(t, Options{Dir: dir, Sources: []BindingsSource{src}})
			h.until("listing", func() bool { return !h.m.files.listing && h.m.files.nfiles == len(tc.files) })
			files := screenText(h.m)
			h.keys("1")
			h.until("bindings", func() bool { return len(h.m.binds.rows) == tc.bindings })
			txt := files + "\n" + screenText(h.m)
			for _, w := range tc.want {
				if !strings.Contains(txt, w) {
					t.Errorf("screens lack %q:\n%s", w, txt)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(txt, w) {
					t.Errorf("screens show %q:\n%s", w, txt)
				}
			}
		})
	}
}

func TestCutLeft(t *testing.T) {
	for _, tc := range []struct {
		s    string
		w    int
		want string
	}{
		{"127.0.0.1:32903", 20, "127.0.0.1:32903"},
		{"127.0.0.1:32903", 15, "127.0.0.1:32903"},
		{"127.0.0.1:32903", 9, "….1:32903"},
		{"[2001:db8::1]:443", 6, "…]:443"},
		{"127.0.0.1:32903", 1, "…"},
		{"127.0.0.1:32903", 0, ""},
	} {
		if got := cutLeft(tc.s, tc.w); got != tc.want || textWidth(got) > tc.w {
			t.Errorf("cutLeft(%q, %d) = %q, want %q", tc.s, tc.w, got, tc.want)
		}
	}
}
