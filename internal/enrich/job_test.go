package enrich

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
)

func truthBindings(t *testing.T, truth string) (string, []string) {
	return fixtures.TruthBindings(t, truth, t.TempDir())
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestJobAgainstTruth enriches the synthetic fixtures with bindings built
// from their ground truth: every TCP/UDP flow must get the process that
// owned its local end, existing usernames are kept unless overwriting
// (and then replaced only by a match), and ICMP flows stay unmatched.
func TestJobAgainstTruth(t *testing.T) {
	dir := fixtures.Dir(t)
	for _, tc := range []struct{ file, truth string }{
		{"v9-mixed.lz4.nf", "v9-mixed.truth.csv"},
		{"v9-mixed.lzo.nf", "v9-mixed.truth.csv"},
		{"ipfix-mixed.lz4.nf", "ipfix-mixed.truth.csv"},
		{"v9-alluser.bz2.nf", "v9-alluser.truth.csv"},
	} {
		for _, overwrite := range []bool{false, true} {
			t.Run(tc.file+map[bool]string{true: "/overwrite", false: "/keep"}[overwrite], func(t *testing.T) {
				bindings, want := truthBindings(t, filepath.Join(dir, tc.truth))
				path := filepath.Join(t.TempDir(), "nfcapd.202311142210")
				copyFile(t, filepath.Join(dir, tc.file), path)
				var before []string
				r, _ := nfcap.OpenFile(path, nfcap.ReaderOptions{})
				for f, err := range r.Flows() {
					if err != nil {
						t.Fatal(err)
					}
					before = append(before, f.Username)
				}
				r.Close()
				unknown, _ := ParseTemplate("{service}***")
				job, err := NewJob(Options{Sources: []Source{NewBindingsFile(bindings)}, Overwrite: overwrite, Unknown: unknown})
				if err != nil {
					t.Fatal(err)
				}
				sum, err := job.Run(context.Background(), path, nil)
				if err != nil {
					t.Fatal(err)
				}
				icmp := int64(0)
				for _, w := range want {
					if w == "" {
						icmp++
					}
				}
				if sum.Flows != int64(len(want)) || sum.Unmatched != icmp || sum.Matched() != int64(len(want))-icmp {
					t.Fatalf("summary %+v: want %d flows, %d unmatched", sum, len(want), icmp)
				}
				r, err = nfcap.OpenFile(path, nfcap.ReaderOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				i := 0
				for f, err := range r.Flows() {
					if err != nil {
						t.Fatal(err)
					}
					exp := want[i]
					switch {
					case before[i] != "" && (!overwrite || exp == ""):
						exp = before[i] // the unknown text never replaces a username
					case exp == "":
						exp = icmpService(f.Proto) + "***" // ICMP: no port, no binding
					}
					if f.Username != exp {
						t.Fatalf("flow %d (%v:%d -> %v:%d proto %d): username %q, want %q", i+1, f.SrcAddr, f.SrcPort, f.DstAddr, f.DstPort, f.Proto, f.Username, exp)
					}
					i++
				}
			})
		}
	}
}

// TestDryRunTouchesNothing runs a dry run and checks the file is unchanged
// and the summary matches what a real run then reports.
func TestDryRunTouchesNothing(t *testing.T) {
	dir := fixtures.Dir(t)
	bindings, _ := truthBindings(t, filepath.Join(dir, "v9-mixed.truth.csv"))
	path := filepath.Join(t.TempDir(), "nfcapd.202311142210")
	copyFile(t, filepath.Join(dir, "v9-mixed.none.nf"), path)
	before, _ := os.ReadFile(path)
	job, err := NewJob(Options{Sources: []Source{NewBindingsFile(bindings)}})
	if err != nil {
		t.Fatal(err)
	}
	var sample []string
	dry, err := job.DryRun(context.Background(), path, func(f *nfcap.Flow, u string) bool {
		sample = append(sample, u)
		return len(sample) < 5
	})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("dry run modified the file")
	}
	if len(sample) != 5 || sample[0] != "chronyd" {
		t.Errorf("sample %q", sample)
	}
	real, err := job.Run(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Flows != real.Flows || dry.Matched() != real.Matched() || dry.Unmatched != real.Unmatched || len(dry.TopUnmatched) == 0 {
		t.Errorf("dry run %+v\nreal run %+v", dry, real)
	}
	if !dry.TopUnmatched[0].Local {
		t.Errorf("top unmatched endpoint %+v not known as local", dry.TopUnmatched[0])
	}
}

// TestUnknownNeverReplaces: the --unknown text fills only flows without a
// username; --overwrite replaces an existing username only with the label
// of a binding that matched. What a dry run shows (Effective) is what the
// real run writes.
func TestUnknownNeverReplaces(t *testing.T) {
	dir := fixtures.Dir(t)
	bindings, want := truthBindings(t, filepath.Join(dir, "v9-mixed.truth.csv"))
	for _, tc := range []struct {
		name      string
		overwrite bool
		unknown   string
	}{
		{"keep", false, ""},
		{"keep, unknown", false, "UNK-{service}"},
		{"overwrite", true, ""},
		{"overwrite, unknown", true, "UNK-{service}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nfcapd.202311142210")
			copyFile(t, filepath.Join(dir, "v9-mixed.lz4.nf"), path)
			opts := Options{Sources: []Source{NewBindingsFile(bindings)}, Overwrite: tc.overwrite}
			if tc.unknown != "" {
				u, err := ParseTemplate(tc.unknown)
				if err != nil {
					t.Fatal(err)
				}
				opts.Unknown = u
			}
			job, err := NewJob(opts)
			if err != nil {
				t.Fatal(err)
			}
			var before, dry []string
			var protos []uint8
			if _, err := job.DryRun(context.Background(), path, func(f *nfcap.Flow, u string) bool {
				before = append(before, f.Username)
				protos = append(protos, f.Proto)
				dry = append(dry, u)
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := job.Run(context.Background(), path, nil); err != nil {
				t.Fatal(err)
			}
			after := flowUsernames(t, path)
			if len(after) != len(want) || len(dry) != len(want) {
				t.Fatalf("%d flows after, %d in the dry run, want %d", len(after), len(dry), len(want))
			}
			kept, filled := 0, 0
			for i := range want {
				var exp string
				switch matched := want[i] != ""; {
				case before[i] != "" && (!tc.overwrite || !matched):
					exp = before[i]
					kept++
				case matched:
					exp = want[i]
				case tc.unknown != "":
					exp = "UNK-" + icmpService(protos[i]) // only ICMP flows match nothing
					filled++
				}
				if after[i] != exp || dry[i] != exp {
					t.Fatalf("flow %d (username %q, matched %v): written %q, dry run %q, want %q",
						i+1, before[i], want[i] != "", after[i], dry[i], exp)
				}
			}
			if kept == 0 || (tc.unknown != "" && filled == 0) {
				t.Fatalf("fixture has %d kept and %d filled flows: the test checks nothing", kept, filled)
			}
		})
	}
}

// TestEmptyLabelWritesNothing: a template that renders empty for a
// binding ({container} of a process in no container) labels nothing: no
// empty username is written, and none is erased, even when overwriting.
func TestEmptyLabelWritesNothing(t *testing.T) {
	dir := fixtures.Dir(t)
	bindings, _ := truthBindings(t, filepath.Join(dir, "v9-mixed.truth.csv"))
	path := filepath.Join(t.TempDir(), "nfcapd.202311142210")
	copyFile(t, filepath.Join(dir, "v9-mixed.lz4.nf"), path)
	label, err := ParseTemplate("{container}")
	if err != nil {
		t.Fatal(err)
	}
	job, err := NewJob(Options{Sources: []Source{NewBindingsFile(bindings)}, Label: label, Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	before := flowUsernames(t, path)
	var dry []string
	if _, err := job.DryRun(context.Background(), path, func(_ *nfcap.Flow, u string) bool {
		dry = append(dry, u)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	sum, err := job.Run(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Matched() == 0 || !sum.Written.Unchanged || sum.Written.Inserted+sum.Written.Replaced != 0 {
		t.Fatalf("summary %+v, want matches and an unchanged file", sum)
	}
	after := flowUsernames(t, path)
	if !slices.Equal(after, before) || !slices.Equal(dry, before) {
		t.Fatal("usernames changed, or the dry run said they would")
	}
}

func flowUsernames(t *testing.T, path string) []string {
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

// TestPlanFork: a fork labels like its plan, over the same index, and
// counts apart from it.
func TestPlanFork(t *testing.T) {
	file := filepath.Join(fixtures.Dir(t), "v9-mixed.none.nf")
	p, err := truthJob(t).Prepare(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Fork()
	if q.Index != p.Index || q.Path != p.Path || !q.First.Equal(p.First) {
		t.Fatal("the fork is not over the same file and index")
	}
	r, err := nfcap.OpenFile(file, nfcap.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for f, err := range r.Flows() {
		if err != nil {
			t.Fatal(err)
		}
		a, aok := p.Label(f)
		if b, bok := q.Label(f); a != b || aok != bok {
			t.Fatalf("flow %d: plan labels %q/%v, fork %q/%v", n, a, aok, b, bok)
		}
		n++
	}
	for i := 0; i < 10; i++ {
		r2, _ := nfcap.OpenFile(file, nfcap.ReaderOptions{})
		for f := range r2.Flows() {
			q.Label(f)
			break
		}
		r2.Close()
	}
	if ps, qs := p.Summary(), q.Summary(); ps.Flows != int64(n) || qs.Flows != int64(n)+10 {
		t.Errorf("plan counted %d flows, fork %d; want %d and %d", ps.Flows, qs.Flows, n, n+10)
	}
}

// namedDownSource fails with an error that names it, as the remote
// client's errors do.
type namedDownSource struct{ downSource }

func (s namedDownSource) Add(context.Context, *tracker.IndexBuilder, time.Time, time.Time) error {
	return errors.New("tracker " + s.Name() + ": connection refused")
}

// poolDownSource is two trackers asked together (a remote.Pool), both
// failing: the pool's error names each.
type poolDownSource struct{}

func (poolDownSource) Name() string { return "http://a:1, http://b:2" }
func (poolDownSource) Add(context.Context, *tracker.IndexBuilder, time.Time, time.Time) error {
	return &remote.PoolError{Failed: []*remote.TrackerError{
		{URL: "http://a:1", Err: errors.New("refused")}, {URL: "http://b:2", Err: errors.New("refused")}}}
}

// TestPrepareNamesSourceOnce: a failing source is named in the error,
// once.
func TestPrepareNamesSourceOnce(t *testing.T) {
	nf := filepath.Join(fixtures.Dir(t), "v9-mixed.lz4.nf")
	for _, tc := range []struct {
		src  Source
		want string
	}{
		{downSource{}, "bindings from https://down.example:7701: tracker unreachable"},
		{namedDownSource{}, "tracker https://down.example:7701: connection refused"},
		{poolDownSource{}, "tracker http://a:1: refused; tracker http://b:2: refused"},
	} {
		job, err := NewJob(Options{Sources: []Source{tc.src}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = job.Prepare(context.Background(), nf)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%T: %v, want %q", tc.src, err, tc.want)
		}
	}
}

// endedSource holds one binding: the exact 5-tuple of a flow, ended gap
// before the flow started.
type endedSource struct {
	f   nfcap.Flow
	gap time.Duration
}

func (endedSource) Name() string { return "ended" }
func (s endedSource) Add(_ context.Context, ib *tracker.IndexBuilder, _, _ time.Time) error {
	start := time.UnixMilli(int64(s.f.MsecFirst))
	ib.AddBinding(tracker.Binding{
		Socket: tracker.Socket{Proto: tracker.Proto(s.f.Proto), Local: netip.AddrPortFrom(s.f.SrcAddr, s.f.SrcPort),
			Remote: netip.AddrPortFrom(s.f.DstAddr, s.f.DstPort), State: tracker.StateEstablished},
		Owner: &tracker.Process{PID: 7, Name: "late"}, Host: "h",
		From: start.Add(-time.Minute), Until: start.Add(-s.gap),
	})
	return nil
}

// TestTolerance: a binding that ended 2 s before a flow matches it within
// the default tolerance (5 s), and not with a 1 s tolerance or none
// (ToleranceOption(0), what --tolerance 0 gives).
func TestTolerance(t *testing.T) {
	nf := filepath.Join(fixtures.Dir(t), "v9-mixed.lz4.nf")
	r, err := nfcap.OpenFile(nf, nfcap.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var flow nfcap.Flow
	for f, err := range r.Flows() {
		if err != nil {
			t.Fatal(err)
		}
		if f.Proto == 6 || f.Proto == 17 {
			flow = *f
			break
		}
	}
	r.Close()
	for _, tc := range []struct {
		tol  time.Duration
		want bool
	}{
		{0, true}, // the default
		{ToleranceOption(5 * time.Second), true},
		{ToleranceOption(time.Second), false},
		{ToleranceOption(0), false},
	} {
		job, err := NewJob(Options{Sources: []Source{endedSource{flow, 2 * time.Second}}, Tolerance: tc.tol})
		if err != nil {
			t.Fatal(err)
		}
		p, err := job.Prepare(context.Background(), nf)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := p.Label(&flow)
		if ok != tc.want {
			t.Errorf("tolerance %v: matched %v, want %v", tc.tol, ok, tc.want)
		}
	}
}

// icmpService is the {service} of an ICMP flow.
func icmpService(proto uint8) string {
	if proto == nfcap.ProtoICMPv6 {
		return "icmp6"
	}
	return "icmp"
}
