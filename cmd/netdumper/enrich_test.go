package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netdumper/netdumper/internal/fixtures"
)

// enrichSetup copies v9-mixed into a fresh nfcapd-style directory (with an
// nfcapd.current file that must never be touched) and writes bindings from
// the fixture's ground truth.
func enrichSetup(t *testing.T) (dir, file, bindings string, want []string) {
	t.Helper()
	fx := fixtures.Dir(t)
	dir = t.TempDir()
	sub := filepath.Join(dir, "2023", "11", "14")
	os.MkdirAll(sub, 0o755)
	file = filepath.Join(sub, "nfcapd.202311142210")
	b, _ := os.ReadFile(filepath.Join(fx, "v9-mixed.none.nf"))
	os.WriteFile(file, b, 0o644)
	os.WriteFile(filepath.Join(sub, "nfcapd.current.77"), b, 0o644)
	bindings, want = fixtures.TruthBindings(t, filepath.Join(fx, "v9-mixed.truth.csv"), t.TempDir())
	return dir, file, bindings, want
}

func TestEnrichCommand(t *testing.T) {
	dir, file, bindings, want := enrichSetup(t)
	orig, _ := os.ReadFile(file)
	current := filepath.Join(filepath.Dir(file), "nfcapd.current.77")

	// Without --yes and without a terminal: refuse, naming --yes.
	r := runNetdumper(t, "UTC", "enrich", "--bindings", bindings, dir)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("no --yes: code %d, stderr %q", r.code, r.stderr)
	}
	// A dry run prints records with their future usernames and a summary,
	// and touches nothing.
	r = runNetdumper(t, "UTC", "enrich", "--dry-run", "--sample", "3", "--bindings", bindings, dir)
	if r.code != 0 {
		t.Fatalf("dry run: code %d\n%s", r.code, r.stderr)
	}
	lines := strings.Split(r.stdout, "\n")
	if len(lines) < 6 || !strings.HasSuffix(lines[2], " chronyd") || !strings.Contains(r.stdout, "would enrich 1500 flows") {
		t.Fatalf("dry run output:\n%s", r.stdout)
	}
	if b, _ := os.ReadFile(file); string(b) != string(orig) {
		t.Fatal("dry run modified the file")
	}
	// Bad template: usage error.
	if r := runNetdumper(t, "UTC", "enrich", "--yes", "--label", "{nope}", "--bindings", bindings, dir); r.code != exitUsage {
		t.Fatalf("bad template: code %d %s", r.code, r.stderr)
	}
	// The real run, with JSON summaries.
	r = runNetdumper(t, "UTC", "enrich", "--yes", "--json", "--unknown", "{service}***", "--bindings", bindings, dir)
	if r.code != 0 {
		t.Fatalf("enrich: code %d\n%s", r.code, r.stderr)
	}
	var sum struct {
		Path      string `json:"path"`
		Flows     int64  `json:"flows"`
		Unmatched int64  `json:"unmatched"`
		Written   struct{ Inserted, Kept int64 }
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &sum); err != nil {
		t.Fatalf("json summary %q: %v", r.stdout, err)
	}
	if sum.Path != file || sum.Flows != 1500 || sum.Written.Kept != 377 || sum.Written.Inserted != 1500-377 {
		t.Fatalf("summary %+v", sum)
	}
	// nfdump shows the labels.
	got := strings.Split(strings.TrimSpace(runNfdump(t, "UTC", "-q", "-r", file, "-o", "fmt:%uname")), "\n")
	existing := strings.Split(strings.TrimSpace(runNfdump(t, "UTC", "-q", "-r", filepath.Join(fixtures.Dir(t), "v9-mixed.none.nf"), "-o", "fmt:%uname")), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines from nfdump, want %d", len(got), len(want))
	}
	for i := range got {
		w := want[i]
		switch {
		case existing[i] != "<empty>":
			w = existing[i]
		case w == "":
			w = "-***"
		}
		if got[i] != w {
			t.Fatalf("flow %d: nfdump shows %q, want %q", i+1, got[i], w)
		}
	}
	if b, _ := os.ReadFile(current); string(b) != string(orig) {
		t.Fatal("nfcapd.current file modified")
	}
	// Missing bindings file: exit 1 naming it.
	if r := runNetdumper(t, "UTC", "enrich", "--yes", "--bindings", "/nonexistent.json", dir); r.code != exitFailure || !strings.Contains(r.stderr, "/nonexistent.json") {
		t.Fatalf("missing bindings: code %d %q", r.code, r.stderr)
	}
}
