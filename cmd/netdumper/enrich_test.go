package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
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
	// Bad or empty template: usage error naming the flag.
	for _, bad := range [][]string{{"--label", "{nope}"}, {"--label", ""}, {"--unknown", "{nope}"}} {
		args := append([]string{"enrich", "--yes", "--bindings", bindings}, bad...)
		if r := runNetdumper(t, "UTC", append(args, dir)...); r.code != exitUsage || !strings.Contains(r.stderr, bad[0]+": ") {
			t.Fatalf("template %s %q: code %d %s", bad[0], bad[1], r.code, r.stderr)
		}
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
		Written   struct {
			Inserted int64 `json:"inserted"`
			Kept     int64 `json:"kept"`
		} `json:"written"`
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
	protos := strings.Fields(runNfdump(t, "UTC", "-q", "-r", file, "-o", "fmt:%pr"))
	if len(got) != len(want) {
		t.Fatalf("%d lines from nfdump, want %d", len(got), len(want))
	}
	for i := range got {
		w := want[i]
		switch {
		case existing[i] != "<empty>":
			w = existing[i]
		case w == "": // ICMP: no binding, and {service} names the protocol
			w = strings.ToLower(protos[i]) + "***"
		}
		if got[i] != w {
			t.Fatalf("flow %d: nfdump shows %q, want %q", i+1, got[i], w)
		}
	}
	if b, _ := os.ReadFile(current); string(b) != string(orig) {
		t.Fatal("nfcapd.current file modified")
	}
	// Again, with every label in place: nothing to change, and the file is
	// left as it was.
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	old := before.ModTime().Add(-time.Hour)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	r = runNetdumper(t, "UTC", "enrich", "--yes", "--unknown", "{service}***", "--bindings", bindings, dir)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to change (1500 usernames kept), file left as it was") {
		t.Fatalf("second run: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after, err := os.Stat(file); err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(old) {
		t.Fatalf("second run replaced or touched the file: %v", err)
	}
	// Missing bindings file: exit 1 naming it.
	if r := runNetdumper(t, "UTC", "enrich", "--yes", "--bindings", "/nonexistent.json", dir); r.code != exitFailure || !strings.Contains(r.stderr, "/nonexistent.json") {
		t.Fatalf("missing bindings: code %d %q", r.code, r.stderr)
	}
}

// runNetdumperIn runs netdumper like runNetdumper (TZ=UTC), with stdin and
// stopped after limit (a command that should have exited at once but
// keeps running then shows as what it did meanwhile).
func runNetdumperIn(t *testing.T, stdin io.Reader, limit time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		if k == "TZ" {
			return "UTC"
		}
		return os.Getenv(k)
	}
	code := run(ctx, args, env{stdin: stdin, stdout: &stdout, stderr: &stderr, getenv: getenv})
	return result{stdout.String(), stderr.String(), code}
}

// TestEnrichWatchReportsFailureOnce: a file that fails is named once per
// attempt, on stderr with its retry, and as a summary only with --json; the
// good file beside it is enriched and summarised.
func TestEnrichWatchReportsFailureOnce(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		t.Run(map[bool]string{false: "text", true: "json"}[asJSON], func(t *testing.T) {
			dir, file, bindings, _ := enrichSetup(t)
			os.Remove(filepath.Join(filepath.Dir(file), "nfcapd.current.77"))
			b, _ := os.ReadFile(file)
			bad := filepath.Join(filepath.Dir(file), "nfcapd.202311142215")
			os.WriteFile(bad, b[:3000], 0o644)
			args := []string{"enrich", "--yes", "--watch", dir, "--delay", "0", "--since", "0", "--state", t.TempDir(),
				"--bindings", bindings}
			if asJSON {
				args = append(args, "--json")
			}
			// A damaged file is tried once (and again only if it changes).
			r := runNetdumperIn(t, strings.NewReader(""), 1500*time.Millisecond, args...)
			if got := strings.Count(r.stderr, "nfcapd.202311142215"); got != 2 || !strings.Contains(r.stderr, "level=WARN") {
				// Named twice on its line: file=, and in err.
				t.Errorf("the failed file is named %d times, want 2 on one line:\n%s", got, r.stderr)
			}
			if strings.Contains(r.stderr, "level=ERROR") {
				t.Errorf("the failure was logged twice:\n%s", r.stderr)
			}
			if !strings.Contains(r.stdout, file) {
				t.Errorf("stdout has no summary of the good file:\n%s", r.stdout)
			}
			if strings.Contains(r.stderr, filepath.Base(file)) {
				t.Errorf("the good file is logged too, besides its summary:\n%s", r.stderr)
			}
			if got := strings.Contains(r.stdout, bad); got != asJSON {
				t.Errorf("stdout names the failed file: %v, want %v:\n%s", got, asJSON, r.stdout)
			}
		})
	}
}

// TestEnrichWatchNeedsYesNoDryRun: a watcher rewrites every file it takes,
// so it needs --yes (on a terminal too: it cannot ask for each file) and
// refuses --dry-run, before it touches anything.
func TestEnrichWatchNeedsYesNoDryRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		tty  bool
		want []string
	}{
		{"dry run", []string{"--yes", "--dry-run"}, false, []string{"--watch", "--dry-run"}},
		{"dry run without --yes", []string{"--dry-run"}, false, []string{"--watch", "--dry-run"}},
		{"no --yes", nil, false, []string{"--watch", "--yes"}},
		{"no --yes on a terminal", nil, true, []string{"--watch", "--yes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, file, bindings, _ := enrichSetup(t)
			orig, _ := os.ReadFile(file)
			var stdin io.Reader = strings.NewReader("")
			if tc.tty {
				_, stdin = openPTY(t)
			}
			args := append([]string{"enrich", "--watch", dir, "--delay", "0", "--since", "0", "--state", t.TempDir(),
				"--bindings", bindings}, tc.args...)
			r := runNetdumperIn(t, stdin, 3*time.Second, args...)
			if r.code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not name %s", r.stderr, w)
				}
			}
			if b, _ := os.ReadFile(file); !bytes.Equal(b, orig) {
				t.Error("the file was rewritten")
			}
		})
	}
}

// TestEnrichJSONConfirms: --json does not stand for --yes. On a terminal
// enrich shows the summary and asks, on stderr, and rewrites only after a
// yes, with stdout all JSON; without a terminal it refuses, naming --yes.
func TestEnrichJSONConfirms(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tty     bool
		answer  string
		code    int
		changed bool
	}{
		{"no terminal", false, "", exitUsage, false},
		{"terminal, no", true, "n\n", exitFailure, false},
		{"terminal, yes", true, "y\n", exitOK, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, file, bindings, _ := enrichSetup(t)
			orig, _ := os.ReadFile(file)
			var stdin io.Reader = strings.NewReader(tc.answer)
			if tc.tty {
				ctl, tty := openPTY(t)
				if _, err := ctl.WriteString(tc.answer); err != nil {
					t.Fatal(err)
				}
				stdin = tty
			}
			r := runNetdumperIn(t, stdin, 30*time.Second, "enrich", "--json", "--bindings", bindings, file)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			b, _ := os.ReadFile(file)
			if changed := !bytes.Equal(b, orig); changed != tc.changed {
				t.Errorf("file changed: %v, want %v", changed, tc.changed)
			}
			if !tc.tty {
				if !strings.Contains(r.stderr, "--yes") {
					t.Errorf("refusal does not name --yes: %q", r.stderr)
				}
				return
			}
			if !strings.Contains(r.stderr, "would enrich 1500 flows") || !strings.Contains(r.stderr, "[y/N]") {
				t.Errorf("no summary and question on stderr:\n%s", r.stderr)
			}
			var objs int
			for line := range strings.Lines(r.stdout) {
				var sum struct {
					Path  string `json:"path"`
					Flows int64  `json:"flows"`
				}
				if err := json.Unmarshal([]byte(line), &sum); err != nil {
					t.Fatalf("stdout line %q is not JSON: %v", line, err)
				}
				if sum.Path != file || sum.Flows != 1500 {
					t.Errorf("summary %+v", sum)
				}
				objs++
			}
			if want := map[bool]int{true: 1, false: 0}[tc.changed]; objs != want {
				t.Errorf("%d JSON objects on stdout, want %d:\n%s", objs, want, r.stdout)
			}
		})
	}
}

// TestEnrichJSONConfirmFailedFile: when a file fails before the question,
// nothing is asked or rewritten, and --json still prints the failed
// file's object.
func TestEnrichJSONConfirmFailedFile(t *testing.T) {
	_, file, bindings, _ := enrichSetup(t)
	orig, _ := os.ReadFile(file)
	bad := filepath.Join(filepath.Dir(file), "nfcapd.202311142215")
	if err := os.WriteFile(bad, []byte("not a flow file"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctl, tty := openPTY(t)
	if _, err := ctl.WriteString("y\n"); err != nil {
		t.Fatal(err)
	}
	r := runNetdumperIn(t, tty, 30*time.Second, "enrich", "--json", "--bindings", bindings, file, bad)
	if r.code != exitFailure || strings.Contains(r.stderr, "[y/N]") || !strings.Contains(r.stderr, "nothing changed") {
		t.Fatalf("exit %d, want %d without a question\nstderr:\n%s", r.code, exitFailure, r.stderr)
	}
	var sum struct {
		Path  string `json:"path"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Path != bad || sum.Error == "" {
		t.Errorf("stdout %q (%v), want the failed file's object", r.stdout, err)
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, orig) {
		t.Error("the good file was rewritten")
	}
}

// TestEnrichBadFormat: a bad -o is a usage error (exit 2, as in show),
// found before any file is read or written.
func TestEnrichBadFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"dry run", []string{"--dry-run"}},
		{"dry run, json", []string{"--dry-run", "--json"}},
		{"real run", []string{"--yes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, file, bindings, _ := enrichSetup(t)
			orig, _ := os.ReadFile(file)
			args := append([]string{"enrich", "-o", "fmt:%bogus", "--bindings", bindings}, tc.args...)
			r := runNetdumper(t, "UTC", append(args, file)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "%bogus") || strings.Contains(r.stderr, " failed") {
				t.Errorf("exit %d, want %d; stderr %q", r.code, exitUsage, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if b, _ := os.ReadFile(file); !bytes.Equal(b, orig) {
				t.Error("the file was rewritten")
			}
		})
	}
}

// TestEnrichJSONFailedFile: with --json, a dry run prints one object per
// file like the real run, a file that failed included (with its error).
func TestEnrichJSONFailedFile(t *testing.T) {
	for _, mode := range []string{"--dry-run", "--yes"} {
		t.Run(mode, func(t *testing.T) {
			dir, file, bindings, _ := enrichSetup(t)
			bad := filepath.Join(filepath.Dir(file), "nfcapd.202311142215")
			if err := os.WriteFile(bad, []byte("not a flow file"), 0o644); err != nil {
				t.Fatal(err)
			}
			r := runNetdumper(t, "UTC", "enrich", mode, "--json", "--bindings", bindings, dir)
			if r.code != exitFailure {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, exitFailure, r.stderr)
			}
			type object struct {
				Path  string `json:"path"`
				Flows int64  `json:"flows"`
				Error string `json:"error"`
			}
			var got []object
			for line := range strings.Lines(r.stdout) {
				var o object
				if err := json.Unmarshal([]byte(line), &o); err != nil {
					t.Fatalf("stdout line %q: %v", line, err)
				}
				got = append(got, o)
			}
			if len(got) != 2 || got[0].Path != file || got[0].Error != "" || got[0].Flows != 1500 ||
				got[1].Path != bad || !strings.Contains(got[1].Error, "not an nfdump file") {
				t.Errorf("objects %+v, want %s ok then %s failed", got, file, bad)
			}
		})
	}
}

// TestEnrichMissingPath: a PATH that does not exist is named with the
// reason and the run goes on with the others; the exit status is 1.
func TestEnrichMissingPath(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		changed bool
		objects int // JSON objects on stdout (-1: text)
	}{
		{"real run", []string{"--yes"}, true, -1},
		{"real run, json", []string{"--yes", "--json"}, true, 2},
		{"dry run", []string{"--dry-run"}, false, -1},
		{"dry run, json", []string{"--dry-run", "--json"}, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, file, bindings, _ := enrichSetup(t)
			orig, _ := os.ReadFile(file)
			missing := filepath.Join(t.TempDir(), "missing")
			args := append([]string{"enrich", "--bindings", bindings}, tc.args...)
			r := runNetdumper(t, "UTC", append(args, missing, file)...)
			if r.code != exitFailure {
				t.Errorf("exit %d, want %d; stderr %q", r.code, exitFailure, r.stderr)
			}
			if !strings.Contains(r.stderr, missing) || !strings.Contains(r.stderr, "no such file") {
				t.Errorf("stderr %q does not name %s with the reason", r.stderr, missing)
			}
			b, _ := os.ReadFile(file)
			if changed := !bytes.Equal(b, orig); changed != tc.changed {
				t.Errorf("%s changed: %v, want %v", file, changed, tc.changed)
			}
			if !strings.Contains(r.stdout, file) {
				t.Errorf("stdout has no summary of %s:\n%s", file, r.stdout)
			}
			if tc.objects >= 0 {
				n := 0
				for line := range strings.Lines(r.stdout) {
					var o struct{ Path, Error string }
					if err := json.Unmarshal([]byte(line), &o); err != nil {
						t.Fatalf("stdout line %q: %v", line, err)
					}
					if (o.Path == missing) != (o.Error != "") {
						t.Errorf("object %+v", o)
					}
					n++
				}
				if n != tc.objects {
					t.Errorf("%d JSON objects, want %d:\n%s", n, tc.objects, r.stdout)
				}
			}
		})
	}
}

// writeEmptyFlowFile writes a valid nfdump file without flows.
func writeEmptyFlowFile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := nfcap.NewWriter(f, nfcap.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestEnrichEmptyFile: a file without flows has no time window; the
// summary says so instead of showing the zero time.
func TestEnrichEmptyFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"dry run", []string{"--dry-run"}, "no flows, no time window"},
		{"real run", []string{"--yes"}, "no flows, no time window"},
		{"dry run, json", []string{"--dry-run", "--json"}, `"flows":0`},
		{"real run, json", []string{"--yes", "--json"}, `"flows":0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, bindings, _ := enrichSetup(t)
			file := filepath.Join(t.TempDir(), "nfcapd.202311142220")
			writeEmptyFlowFile(t, file)
			r := runNetdumper(t, "UTC", append(append([]string{"enrich", "--bindings", bindings}, tc.args...), file)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, tc.want) || strings.Contains(r.stdout, "0001-01-01") {
				t.Errorf("stdout %q: want %q and no zero time", r.stdout, tc.want)
			}
		})
	}
}

// TestEnrichErrorNamesPathOnce: a failed file's message names it once,
// whether or not the error itself already does.
func TestEnrichErrorNamesPathOnce(t *testing.T) {
	valid, _ := os.ReadFile(filepath.Join(fixturesDir(t), "v9-mixed.none.nf"))
	for _, tc := range []struct {
		name    string
		content []byte
		args    []string
	}{
		{"corrupt file", []byte("not a flow file"), []string{"--yes"}},
		{"corrupt file, dry run", []byte("not a flow file"), []string{"--dry-run"}},
		// The error is about the source, not the file: it does not name it.
		{"source fails", valid, []string{"--yes", "--tracker", "http://127.0.0.1:1", "--tracker-timeout", "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, bindings, _ := enrichSetup(t)
			t.Chdir(t.TempDir())
			if err := os.WriteFile("old.nf", tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"enrich", "--bindings", bindings}, tc.args...)
			r := runNetdumper(t, "UTC", append(args, "old.nf")...)
			if r.code != exitFailure {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var msg string
			for line := range strings.Lines(r.stderr) {
				if strings.HasPrefix(line, "netdumper: ") && strings.Contains(line, "old.nf") {
					msg = line
					break
				}
			}
			if n := strings.Count(msg, "old.nf"); n != 1 {
				t.Errorf("the path appears %d times in %q (stderr %q)", n, msg, r.stderr)
			}
		})
	}
}

func TestPathError(t *testing.T) {
	for _, tc := range []struct{ path, err, want string }{
		{"old.nf", "old.nf: bad magic", "old.nf: bad magic"},
		{"x", "open x: no such file or directory", "open x: no such file or directory"},
		{"x", "unexpected EOF", "x: unexpected EOF"},
		{"a.nf", "bindings from b.json: a.nf.json: missing", "a.nf: bindings from b.json: a.nf.json: missing"},
	} {
		if got := pathError(tc.path, errors.New(tc.err)); got != tc.want {
			t.Errorf("pathError(%q, %q) = %q, want %q", tc.path, tc.err, got, tc.want)
		}
	}
}

// TestEnrichUnreachableTracker: a tracker that does not answer fails the
// file (left as it was, named, exit 1; retried by --watch), and the log
// says so rather than suggesting the run carries on without it.
func TestEnrichUnreachableTracker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		retry bool
	}{
		{"once", nil, exitFailure, false},
		{"watch", []string{"--watch", "", "--delay", "0", "--since", "0"}, exitOK, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, file, _, _ := enrichSetup(t)
			orig, _ := os.ReadFile(file)
			args := []string{"enrich", "--yes", "--state", t.TempDir(), "--tracker", down, "--tracker-timeout", "1s"}
			for _, a := range tc.args {
				if a == "" {
					a = dir
				}
				args = append(args, a)
			}
			if !tc.retry {
				args = append(args, file)
			}
			r := runNetdumperIn(t, strings.NewReader(""), 1500*time.Millisecond, args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tc.code, r.stderr)
			}
			if b, _ := os.ReadFile(file); !bytes.Equal(b, orig) {
				t.Error("the file was rewritten")
			}
			if strings.Contains(r.stderr, "unattributed") ||
				!strings.Contains(r.stderr, file) || !strings.Contains(r.stderr, "tracker "+down+": dial") {
				t.Errorf("log does not say that the tracker is down and the file failed:\n%s", r.stderr)
			}
			// One message per failure: the file's, naming the tracker;
			// no second report of the same failure by the pool.
			if strings.Contains(r.stderr, `msg="tracker`) || strings.Contains(r.stderr, "unreachable") {
				t.Errorf("the tracker's failure is reported twice:\n%s", r.stderr)
			}
			if !tc.retry {
				if n := strings.Count(r.stderr, "tracker "+down+":"); n != 1 {
					t.Errorf("the tracker's failure is named %d times, want once:\n%s", n, r.stderr)
				}
			}
			if tc.retry && !strings.Contains(r.stderr, "will retry") {
				t.Errorf("the watcher does not retry:\n%s", r.stderr)
			}
		})
	}
}

// TestEnrichRemovesStaleTemps: a run removes, in the directories of the
// files it enriched, the temporary files killed rewrites left there, and
// says so. For a file reached through a link, that is the directory of
// the file itself, where its rewrite writes.
func TestEnrichRemovesStaleTemps(t *testing.T) {
	_, file, bindings, _ := enrichSetup(t)
	link := filepath.Join(t.TempDir(), "nfcapd.202311142210")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(filepath.Dir(file), ".nfcapd.202311142205.netdumper-99.tmp")
	if err := os.WriteFile(stale, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * enrich.StaleTempAge)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	r := runNetdumper(t, "UTC", "enrich", "--yes", "--bindings", bindings, link)
	if r.code != 0 {
		t.Fatalf("enrich: code %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) || !strings.Contains(r.stderr, stale) {
		t.Errorf("stale temporary file: %v; stderr:\n%s", err, r.stderr)
	}
}

// TestEnrichSkipsUnreadableEntry: an entry of a directory that cannot be
// read fails alone, named with its reason; the files found are enriched.
func TestEnrichSkipsUnreadableEntry(t *testing.T) {
	dir, file, bindings, _ := enrichSetup(t)
	orig, _ := os.ReadFile(file)
	dangling := filepath.Join(filepath.Dir(file), "nfcapd.202311142215")
	if err := os.Symlink(filepath.Join(dir, "gone"), dangling); err != nil {
		t.Fatal(err)
	}
	r := runNetdumper(t, "UTC", "enrich", "--yes", "--json", "--bindings", bindings, dir)
	if r.code != exitFailure || !strings.Contains(r.stderr, dangling) {
		t.Fatalf("exit %d, want %d naming %s; stderr:\n%s", r.code, exitFailure, dangling, r.stderr)
	}
	if b, _ := os.ReadFile(file); bytes.Equal(b, orig) {
		t.Error("the readable file was not enriched")
	}
	var paths []string
	for line := range strings.Lines(r.stdout) {
		var sum struct {
			Path  string `json:"path"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &sum); err != nil {
			t.Fatalf("stdout line %q: %v", line, err)
		}
		paths = append(paths, sum.Path)
	}
	if len(paths) != 2 || !slices.Contains(paths, dangling) || !slices.Contains(paths, file) {
		t.Errorf("JSON objects for %v, want one for %s and one for %s", paths, file, dangling)
	}
}

// TestEnrichBadFlagValues: a flag value out of range, and a --watch-only
// flag without --watch, is a usage error (exit 2) naming the flag, found
// before any file is read or written.
func TestEnrichBadFlagValues(t *testing.T) {
	_, file, bindings, _ := enrichSetup(t)
	orig, _ := os.ReadFile(file)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tolerance", "-5s"}, "--tolerance -5s"},
		{[]string{"--wait", "-1s"}, "--wait -1s"},
		{[]string{"--tracker-timeout", "0s"}, "--tracker-timeout 0s"},
		{[]string{"--tracker-timeout", "-1s"}, "--tracker-timeout -1s"},
		{[]string{"--sample", "-1", "--dry-run"}, "--sample -1"},
		{[]string{"--delay", "5s"}, "--delay is only for --watch"},
		{[]string{"--since", "1h"}, "--since is only for --watch"},
		{[]string{"-z", "gzip"}, "-z gzip: "},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"enrich", "--yes", "--state", t.TempDir(), "--bindings", bindings}, tc.args...)
			r := runNetdumper(t, "UTC", append(args, file)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want %d with %q; stderr %q", r.code, exitUsage, tc.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want none", r.stdout)
			}
			if b, _ := os.ReadFile(file); !bytes.Equal(b, orig) {
				t.Error("the file was rewritten")
			}
		})
	}
	// With --watch, --delay and --since are taken (a negative one is not).
	dir := t.TempDir()
	r := runNetdumperIn(t, strings.NewReader(""), 300*time.Millisecond, "enrich", "--yes", "--state", t.TempDir(),
		"--bindings", bindings, "--watch", dir, "--delay", "1s", "--since", "1h")
	if r.code != exitOK {
		t.Errorf("--watch with --delay and --since: exit %d; stderr %q", r.code, r.stderr)
	}
	r = runNetdumperIn(t, strings.NewReader(""), 5*time.Second, "enrich", "--yes", "--state", t.TempDir(), "--bindings", bindings, "--watch", dir, "--delay", "-1s")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--delay -1s") {
		t.Errorf("--delay -1s: exit %d; stderr %q", r.code, r.stderr)
	}
}

// TestEnrichBindingsErrors: a --bindings file that cannot be used is
// named once, with the flag, and the reason said once.
func TestEnrichBindingsErrors(t *testing.T) {
	_, file, _, _ := enrichSetup(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{\n"), 0o644)
	for _, tc := range []struct {
		name, path, want string
	}{
		{"directory", dir, "netdumper: --bindings " + dir + ": is a directory; want a bindings file"},
		{"missing", missing, "netdumper: --bindings " + missing + ": no such file or directory\n"},
		{"malformed", bad, "netdumper: --bindings " + bad + ":2: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runNetdumper(t, "UTC", "enrich", "--yes", "--bindings", tc.path, file)
			if r.code != exitFailure || !strings.HasPrefix(r.stderr, tc.want) || strings.Count(r.stderr, tc.path) != 1 {
				t.Errorf("exit %d, stderr %q; want %d, starting %q and naming the file once", r.code, r.stderr, exitFailure, tc.want)
			}
		})
	}
}

// TestNeedInputsNamesArgument: a command run without its arguments says
// what it needs as its usage line names it.
func TestNeedInputsNamesArgument(t *testing.T) {
	for _, tc := range []struct{ cmd, want string }{
		{"enrich", "enrich needs at least one PATH;"},
		{"show", "show needs at least one FILE|DIR;"},
		{"inspect", "inspect needs at least one FILE;"},
	} {
		r := runNetdumper(t, "UTC", tc.cmd)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.cmd, r.code, r.stderr, exitUsage, tc.want)
		}
	}
}

// TestEnrichWarnsZstd: rewriting with zstd, which nfdump 1.7.1 cannot
// read, is warned about on stderr; other compressions and dry runs are not.
func TestEnrichWarnsZstd(t *testing.T) {
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{[]string{"--yes", "-z", "zstd"}, true},
		{[]string{"--yes", "--compress", "zstd", "--json"}, true},
		{[]string{"--yes", "-z", "lz4"}, false},
		{[]string{"--dry-run", "-z", "zstd"}, false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, file, bindings, _ := enrichSetup(t)
			args := append([]string{"enrich", "--bindings", bindings}, tc.args...)
			r := runNetdumper(t, "UTC", append(args, file)...)
			if r.code != exitOK {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got := strings.Contains(r.stderr, "nfdump 1.7.1 (Debian 12's) cannot read zstd files"); got != tc.warn {
				t.Errorf("warned %v, want %v; stderr %q", got, tc.warn, r.stderr)
			}
			if strings.Contains(r.stdout, "cannot read zstd") {
				t.Errorf("the warning reached stdout: %q", r.stdout)
			}
		})
	}
}

// TestEnrichLogFlags: enrich takes serve's --log-format and --log-level;
// --watch logs at info by default, as serve does.
func TestEnrichLogFlags(t *testing.T) {
	_, file, bindings, _ := enrichSetup(t)
	watch := func(extra ...string) result {
		args := append([]string{"enrich", "--yes", "--state", t.TempDir(), "--bindings", bindings, "--watch", t.TempDir()}, extra...)
		return runNetdumperIn(t, strings.NewReader(""), 300*time.Millisecond, args...)
	}
	r := watch("--log-format", "json")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	var first struct{ Level, Msg string }
	if r.code != exitOK || json.Unmarshal([]byte(lines[0]), &first) != nil || first.Level != "INFO" || first.Msg != "watching" {
		t.Errorf("--watch --log-format json: exit %d, stderr %q; want a JSON info line saying watching", r.code, r.stderr)
	}
	if r := watch("--log-level", "warn"); r.code != exitOK || strings.Contains(r.stderr, "watching") {
		t.Errorf("--watch --log-level warn: exit %d, stderr %q; want no info line", r.code, r.stderr)
	}
	if r := watch(); r.code != exitOK || !strings.Contains(r.stderr, "level=INFO msg=watching") {
		t.Errorf("--watch: exit %d, stderr %q; want a text info line", r.code, r.stderr)
	}
	for _, bad := range [][]string{{"--log-format", "xml"}, {"--log-level", "loud"}} {
		r := runNetdumper(t, "UTC", append([]string{"enrich", "--yes", "--bindings", bindings}, append(bad, file)...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, bad[0]+" ") {
			t.Errorf("%v: exit %d, stderr %q; want %d naming %s", bad, r.code, r.stderr, exitUsage, bad[0])
		}
	}
}
