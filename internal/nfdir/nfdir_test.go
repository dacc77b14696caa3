package nfdir

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name string
		want string // RFC 3339 in UTC, "" = not a flow file
	}{
		{"nfcapd.202311142210", "2023-11-14T22:10:00Z"},
		{"/x/2023/11/14/nfcapd.20231114221005", "2023-11-14T22:10:05Z"},
		{"nfcapd.current.4242", ""},
		{"nfcapd.2023111422", ""},
		{"nfcapd.20231114221x", ""},
		{"nfcapd.202313142210", ""},
		{".nfcapd.202311142210.netdumper-1.tmp", ""},
		{"flows.nf", ""},
	}
	for _, tc := range tests {
		got, ok := ParseName(tc.name, time.UTC)
		s := ""
		if ok {
			s = got.Format(time.RFC3339)
		}
		if s != tc.want {
			t.Errorf("ParseName(%q) = %q, want %q", tc.name, s, tc.want)
		}
	}
}

func TestWalk(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{
		"2023/11/15/nfcapd.202311150000",
		"2023/11/14/nfcapd.202311142355",
		"2023/11/14/nfcapd.202311142350",
		"2023/11/14/nfcapd.current.99",
		"2023/11/14/.nfcapd.202311142345.netdumper-123.tmp",
		"2023/11/14/notes.txt",
		".hidden/nfcapd.202311140000",
		"nfcapd.202311140000",
	} {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	// A link to a file counts; a link to a directory is not followed.
	os.MkdirAll(filepath.Join(dir, "2023/11/16"), 0o755)
	os.Symlink(filepath.Join(dir, "2023/11/14/nfcapd.202311142350"), filepath.Join(dir, "2023/11/16/nfcapd.202311160000"))
	os.Symlink(filepath.Join(dir, "2023/11/15"), filepath.Join(dir, "2023/11/17"))
	explicit := filepath.Join(dir, "2023/11/14/notes.txt")
	var got []string
	err := Walk(context.Background(), []string{dir, explicit}, func(f File) error {
		rel, _ := filepath.Rel(dir, f.Path)
		got = append(got, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"2023/11/14/nfcapd.202311142350",
		"2023/11/14/nfcapd.202311142355",
		"2023/11/15/nfcapd.202311150000",
		"2023/11/16/nfcapd.202311160000",
		"nfcapd.202311140000",
		"2023/11/14/notes.txt",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Walk (-want +got):\n%s", d)
	}
	if err := Walk(context.Background(), []string{filepath.Join(dir, "2023/11/14/nfcapd.current.99")}, func(File) error { return nil }); err == nil {
		t.Error("explicit nfcapd.current file accepted")
	}
}

// TestWalkSkipsUnreadableEntries: an entry that cannot be read (here a
// dangling link; an unreadable directory, which root cannot make, takes
// the same path in Walk) does not hide the other files; Walk reports it
// at the end, after handing out the others.
func TestWalkSkipsUnreadableEntries(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"2023/11/14/nfcapd.202311142350", "2023/11/15/nfcapd.202311150000"} {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	dangling := filepath.Join(dir, "2023/11/14/nfcapd.202311142355")
	if err := os.Symlink(filepath.Join(dir, "gone"), dangling); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := Walk(context.Background(), []string{dir}, func(f File) error {
		rel, _ := filepath.Rel(dir, f.Path)
		got = append(got, rel)
		return nil
	})
	if d := cmp.Diff([]string{"2023/11/14/nfcapd.202311142350", "2023/11/15/nfcapd.202311150000"}, got); d != "" {
		t.Errorf("Walk (-want +got):\n%s", d)
	}
	sk := Skipped(err)
	if len(sk) != 1 || sk[0].Path != dangling || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), dangling) {
		t.Errorf("err %v, want the dangling link reported as skipped", err)
	}
	// Other errors are not skipped entries.
	if Skipped(errors.New("boom")) != nil || Skipped(nil) != nil {
		t.Error("Skipped accepts an error that is not about entries")
	}
	stop := errors.New("stop")
	if err := Walk(context.Background(), []string{dir}, func(File) error { return stop }); err != stop {
		t.Errorf("fn's error: %v", err)
	}
}
