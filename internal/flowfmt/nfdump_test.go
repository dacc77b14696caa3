package flowfmt

// Differential tests: the real nfdump 1.7.1 and this package format the same
// files, and the outputs must be byte-identical.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

// nfdumpBin returns the nfdump binary, or skips the test.
func nfdumpBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("nfdump")
	if err != nil {
		t.Skip("nfdump is not installed (apt-get install nfdump, or make deps); skipping the comparison with the real nfdump")
	}
	return p
}

// fixturesDir returns the shared fixture directory.
func fixturesDir(t testing.TB) string { return fixtures.Dir(t) }

// fixtureFiles lists the layout-2 fixtures (*.nf at the top level).
func fixtureFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fixturesDir(t), "*.nf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	return files
}

// runNfdump runs nfdump with TZ set and returns its standard output.
func runNfdump(t testing.TB, tz string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(nfdumpBin(t), args...)
	cmd.Env = append(os.Environ(), "TZ="+tz, "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nfdump %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("nfdump %s: stderr: %s", strings.Join(args, " "), stderr.String())
	}
	return out
}

// renderQuiet formats every flow of path like nfdump -q: the records, or
// "No matching flows" when there are none.
func renderQuiet(t testing.TB, path string, fm *Format) []byte {
	t.Helper()
	r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []byte
	n := 0
	for f, err := range r.Flows() {
		if err != nil {
			t.Fatal(err)
		}
		out = fm.AppendRecord(out, f)
		n++
	}
	if n == 0 {
		out = append(out, NoMatchingFlows+"\n"...)
	}
	return out
}

var locCache sync.Map

func loadLoc(t testing.TB, tz string) *time.Location {
	t.Helper()
	if l, ok := locCache.Load(tz); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(tz)
	if err != nil {
		t.Skipf("time zone %s: %v", tz, err)
	}
	locCache.Store(tz, l)
	return l
}

// compareOutput reports the first differing lines of want (nfdump) and got
// (ours). When sep is set, lines are split on it and the differing column is
// named with cols[i].
func compareOutput(t testing.TB, want, got []byte, sep string, cols []string) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	wl := strings.Split(string(want), "\n")
	gl := strings.Split(string(got), "\n")
	if len(wl) != len(gl) {
		t.Errorf("nfdump printed %d lines, we printed %d", len(wl), len(gl))
	}
	bad := 0
	for i := 0; i < len(wl) && i < len(gl); i++ {
		if wl[i] == gl[i] {
			continue
		}
		if bad++; bad > 8 {
			t.Errorf("... more differences")
			return
		}
		if sep != "" {
			wc, gc := strings.Split(wl[i], sep), strings.Split(gl[i], sep)
			if len(wc) == len(gc) && len(wc) == len(cols) {
				for j := range wc {
					if wc[j] != gc[j] {
						t.Errorf("line %d, %s:\nnfdump: %q\nours:   %q", i+1, cols[j], wc[j], gc[j])
					}
				}
				continue
			}
		}
		t.Errorf("line %d:\nnfdump: %q\nours:   %q", i+1, wl[i], gl[i])
	}
	if bad == 0 {
		t.Errorf("outputs differ (line endings?)")
	}
}

// supportedTokens lists every token this package prints, except %n.
func supportedTokens() []string {
	var names []string
	for _, tk := range tokens {
		if tk.fn != nil && tk.name != "%n" {
			names = append(names, tk.name)
		}
	}
	return names
}

// tokenGroups splits the tokens into "|"-separated formats short enough for
// nfdump's 512-character limit.
func tokenGroups() [][]string {
	var groups [][]string
	var cur []string
	n := 0
	for _, tk := range supportedTokens() {
		if n+len(tk)+1 > 400 {
			groups = append(groups, cur)
			cur, n = nil, 0
		}
		cur = append(cur, tk)
		n += len(tk) + 1
	}
	return append(groups, cur)
}

// predefinedSpecs are the named formats compared with nfdump.
var predefinedSpecs = []string{
	"line", "long", "extended", "biline", "bilong", "nsel", "nel",
	"line6", "long6", "extended6", "csv", "fmt:%line %uname",
}

// checkFile compares every token and predefined format on one file.
func checkFile(t *testing.T, path string, tzs []string) {
	for _, tz := range tzs {
		loc := loadLoc(t, tz)
		for _, plain := range []bool{false, true} {
			for gi, group := range tokenGroups() {
				spec := "fmt:" + strings.Join(group, "|")
				t.Run(fmt.Sprintf("TZ=%s/plain=%v/tokens%d", tz, plain, gi), func(t *testing.T) {
					args := []string{"-q", "-r", path, "-o", spec}
					if plain {
						args = append([]string{"-N"}, args...)
					}
					want := runNfdump(t, tz, args...)
					got := renderQuiet(t, path, MustParse(spec, Options{Location: loc, Plain: plain}))
					compareOutput(t, want, got, "|", group)
				})
			}
		}
		for _, spec := range predefinedSpecs {
			t.Run(fmt.Sprintf("TZ=%s/%s", tz, spec), func(t *testing.T) {
				want := runNfdump(t, tz, "-q", "-r", path, "-o", spec)
				got := renderQuiet(t, path, MustParse(spec, Options{Location: loc}))
				compareOutput(t, want, got, "", nil)
			})
		}
	}
}

func TestNfdumpFixtures(t *testing.T) {
	nfdumpBin(t)
	for _, path := range fixtureFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			checkFile(t, path, []string{"UTC", "Europe/Zurich"})
		})
	}
}

// TestNfdumpSynthetic feeds nfdump random records with every element and
// value range nfdump 1.7.1 prints.
func TestNfdumpSynthetic(t *testing.T) {
	nfdumpBin(t)
	n := 3000
	if testing.Short() {
		n = 300
	}
	r := rand.New(rand.NewPCG(20231114, 1))
	var flows []synthFlow
	for i := 0; i < n; i++ {
		flows = append(flows, randFlow(r))
	}
	for p := 0; p < 256; p++ { // every protocol once
		s := randFlow(r)
		s.f.Proto = uint8(p)
		flows = append(flows, s)
	}
	path := filepath.Join(t.TempDir(), "synth.nf")
	writeSynthFile(t, path, flows)
	checkFile(t, path, []string{"UTC", "America/St_Johns", "Asia/Kolkata"})
}

// TestNfdumpHeaders compares Header with the first line nfdump prints
// without -q, for every token alone and every predefined format.
func TestNfdumpHeaders(t *testing.T) {
	nfdumpBin(t)
	path := filepath.Join(fixturesDir(t), "v9-alluser.bz2.nf")
	specs := append([]string{}, predefinedSpecs...)
	for _, tk := range supportedTokens() {
		specs = append(specs, "fmt:"+tk, "fmt:x"+tk+" -> "+tk+"|")
	}
	specs = append(specs, "fmt:%mpls10", "fmt:%line%uname", "fmt:%long6", "fmt:%ts %line", "fmt:FMT:%n%ts")
	for _, spec := range specs {
		t.Run(spec, func(t *testing.T) {
			out := runNfdump(t, "UTC", "-r", path, "-o", spec)
			want, _, _ := strings.Cut(string(out), "\n")
			fm := MustParse(spec, Options{Location: loadLoc(t, "UTC")})
			if got := fm.Header(); got != want {
				t.Errorf("header of %q:\nnfdump: %q\nours:   %q", spec, want, got)
			}
		})
	}
}

// runNfdumpStatus runs nfdump and returns its exit status; output is
// discarded.
func runNfdumpStatus(t testing.TB, args ...string) int {
	t.Helper()
	cmd := exec.Command(nfdumpBin(t), args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("nfdump: %v", err)
	return -1
}

// TestNfdumpGenerated compares every token and format on a fresh set of
// files made by make-fixtures.sh (synthetic NetFlow v9/IPFIX through the
// real nfcapd, every compression).
func TestNfdumpGenerated(t *testing.T) {
	files := fixtures.Generate(t, 5)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			checkFile(t, path, []string{"UTC"})
		})
	}
}
