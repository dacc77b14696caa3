package tracker

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/procfs"
)

// formatSnapshot renders the sockets of a snapshot one per line, sorted,
// for golden files.
func formatSnapshot(snap *Snapshot) string {
	var lines []string
	for _, o := range snap.Sockets {
		remote := "-"
		if o.Connected() {
			remote = o.Remote.String()
		}
		line := fmt.Sprintf("%s %s %s %s inode=%d uid=%d netns=%d", o.Proto, o.Local, remote, o.State, o.Inode, o.UID, o.NetNS)
		if p := o.Owner; p != nil {
			line += fmt.Sprintf(" owner=%d name=%q comm=%q exe=%q cmdline=%q uid=%d user=%q start=%s cgroup=%q container=%q",
				p.PID, p.Name, p.Comm, p.Exe, p.Cmdline, p.UID, p.User, p.StartTime.UTC().Format(time.RFC3339Nano), p.Cgroup, p.Container)
			if o.Inherited {
				line += " inherited"
			}
		} else {
			line += " owner=none"
		}
		lines = append(lines, line)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// TestScanFixture scans the testdata/proc tree with the procfs source and
// compares the result with testdata/scan-fixture.golden: inherited owners
// of inode-0 sockets, the earliest of two holders, the full name of a
// 15-byte comm, a container id, a v4-mapped connection, an inode nobody
// holds.
func TestScanFixture(t *testing.T) {
	fs, err := procfs.NewFS("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts ScanOptions
	}{
		{"procfs source", ScanOptions{ProcRoot: "testdata/proc", Source: SourceProcfs, PasswdFile: "testdata/passwd"}},
		{"injected source", ScanOptions{ProcRoot: "testdata/proc", SocketSource: NewProcNetSource(fs), PasswdFile: "testdata/passwd"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestScanner(t, tt.opts)
			snap := scan(t, s)
			got := formatSnapshot(snap)
			golden := filepath.Join("testdata", "scan-fixture.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("snapshot mismatch (-want +got):\n%s", diff)
			}
			if len(snap.Denied) != 0 {
				t.Errorf("denied %v in a readable fixture", snap.Denied)
			}
			// A second scan sees the same, and the TIME-WAIT connection
			// without a listener still has no owner (it had none before).
			if again := formatSnapshot(scan(t, s)); again != got {
				t.Errorf("second scan differs:\n%s", cmp.Diff(got, again))
			}
		})
	}
}

func TestProcNetSourceMalformed(t *testing.T) {
	tests := []struct {
		name, file, content string
	}{
		{"udp line with ten columns", "udp", "header\n   0: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 123\n"},
		{"bad address", "tcp", "header\n   0: ZZ00007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 123 1 0\n"},
		{"short line", "tcp6", "header\n   0: 00\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
				content := "header\n"
				if f == tt.file {
					content = tt.content
				}
				if err := os.WriteFile(filepath.Join(dir, "net", f), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fs, err := procfs.NewFS(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = NewProcNetSource(fs).AppendSockets(t.Context(), nil)
			if err == nil || !strings.Contains(err.Error(), "/proc/net/"+tt.file) {
				t.Errorf("error %v, want one naming /proc/net/%s", err, tt.file)
			}
		})
	}
}
