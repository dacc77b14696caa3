package tui

// Golden tests: the real Bubble Tea program (teatest) at a fixed size with
// the ASCII colour profile, over the fixtures and a fake tracker. The
// golden file is the final screen. Regenerate with
//
//	go test ./tui -run Golden -update

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/netdumper/netdumper/internal/enrich"
)

const goldenW, goldenH = 110, 32

// goldenDir makes a flow directory named "flows" in a temporary working
// directory and moves there, so that the paths on screen are the same on
// every run; back returns to the package directory (where the golden
// files are).
func goldenDir(t *testing.T) (dir string, back func()) {
	t.Helper()
	work := t.TempDir()
	if err := os.Rename(flowDir(t), filepath.Join(work, "flows")); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(work); err != nil {
		t.Fatal(err)
	}
	back = func() {
		if err := os.Chdir(wd); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(back)
	return "flows", back
}

// runGolden runs m in a test program, lets steps drive it, and compares
// the final screen with the golden file.
func runGolden(t *testing.T, opts Options, back func(), steps func(tm *teatest.TestModel)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(ctx, testOptions(opts))
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(goldenW, goldenH))
	steps(tm)
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
	view := final.View()
	if back != nil {
		back()
	}
	lines := strings.Split(view, "\n")
	if len(lines) != goldenH {
		t.Errorf("%d lines, want %d", len(lines), goldenH)
	}
	teatest.RequireEqualOutput(t, []byte(view+"\n"))
}

// waitText waits until the program has printed every one of want.
func waitText(t *testing.T, tm *teatest.TestModel, want ...string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		for _, w := range want {
			if !bytes.Contains(b, []byte(w)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

func typeKeys(tm *teatest.TestModel, names ...string) {
	for _, n := range names {
		tm.Send(keyMsg(n))
	}
}

func TestGoldenBindings(t *testing.T) {
	src := newFakeSource("local", genBindings(2000))
	db := genBindings(5)
	for i := range db {
		db[i].Host = "db1"
	}
	other := newFakeSource("https://db1:7701", db)
	other.setHealth(Health{HealthDown, "connection refused; retrying in 4s"})
	runGolden(t, Options{Sources: []BindingsSource{src, other}, Start: "bindings"}, nil, func(tm *teatest.TestModel) {
		waitText(t, tm, "2005 bindings")
		typeKeys(tm, "/")
		tm.Type("proc:nginx !port:22")
		typeKeys(tm, "enter", "s", "s", "s", "S", "down", "down")
		waitText(t, tm, "sort pid ▼")
	})
}

func TestGoldenFiles(t *testing.T) {
	dir, back := goldenDir(t)
	runGolden(t, Options{Dir: dir, Notes: []string{"sample flows"}}, back, func(tm *teatest.TestModel) {
		waitText(t, tm, "3354", "377", "290")
		typeKeys(tm, "space", "down")
	})
}

func TestGoldenPreview(t *testing.T) {
	eo := enrich.Options{Sources: []enrich.Source{relBindings{sampleBindings(t)}}}
	dir, back := goldenDir(t)
	runGolden(t, Options{Dir: dir, Enrich: eo}, back, func(tm *teatest.TestModel) {
		waitText(t, tm, "3354", "377", "290")
		typeKeys(tm, "G", "enter")
		// The rows arrive on their own, after or before the match
		// statistics: wait for the last one on screen too.
		waitText(t, tm, "matched 1424 of 1500", "22:13:20.499")
		typeKeys(tm, "down", "down", "down")
	})
}

func TestGoldenCommit(t *testing.T) {
	eo := enrich.Options{Sources: []enrich.Source{relBindings{sampleBindings(t)}}}
	dir, back := goldenDir(t)
	runGolden(t, Options{Dir: dir, Enrich: eo}, back, func(tm *teatest.TestModel) {
		waitText(t, tm, "3354", "377", "290")
		typeKeys(tm, "space", "G", "space", "c")
		waitText(t, tm, "1424 of 1500 records matched", "16 of 22 records matched")
	})
}

func TestGoldenHelp(t *testing.T) {
	dir, back := goldenDir(t)
	runGolden(t, Options{Dir: dir}, back, func(tm *teatest.TestModel) {
		waitText(t, tm, "nfcapd.202311142210")
		typeKeys(tm, "?")
		waitText(t, tm, "Keys")
	})
}

// relBindings names a bindings source without its absolute path.
type relBindings struct{ enrich.Source }

func (relBindings) Name() string { return "testdata/flows/bindings.json" }

var _ tea.Model = (*Model)(nil)
