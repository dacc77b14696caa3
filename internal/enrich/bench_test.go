package enrich

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

// benchInputs returns the 1M-record benchmark file and a 10,000-binding
// file made for it by bench/mkbindings, or skips.
func benchInputs(b *testing.B) (nf, bindings string) {
	dir := os.Getenv("NETDUMPER_BENCH_DATA")
	root, err := fixtures.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	if dir == "" {
		dir = filepath.Join(root, "bench", "data")
	}
	nf = filepath.Join(dir, "v9-bench-1000000.lz4.nf")
	if _, err := os.Stat(nf); err != nil {
		b.Skipf("%s missing: run make bench-data", nf)
	}
	bindings = filepath.Join(b.TempDir(), "bindings.json")
	cmd := exec.Command("go", "run", "./bench/mkbindings", nf, bindings)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("mkbindings: %v\n%s", err, out)
	}
	return nf, bindings
}

// benchPlan prepares a job with the benchmark bindings for the 1M file and
// opens the file.
func benchPlan(b *testing.B) (*Plan, *nfcap.Reader) {
	nf, bindings := benchInputs(b)
	job, err := NewJob(Options{Sources: []Source{NewBindingsFile(bindings)}})
	if err != nil {
		b.Fatal(err)
	}
	p, err := job.Prepare(context.Background(), nf)
	if err != nil {
		b.Fatal(err)
	}
	r, err := nfcap.OpenFile(nf, nfcap.ReaderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return p, r
}

// BenchmarkPlanLabel measures the labelling of one flow (index lookup,
// template, counters) with 10,000 bindings, over the flows of the 1M file.
func BenchmarkPlanLabel(b *testing.B) {
	p, r := benchPlan(b)
	// Every 64th flow, 4096 of them: a Flow is 800 bytes, and the
	// rewrite labels each one just after decoding it, so they must stay
	// in the cache as they do there, not stream from memory.
	var flows []nfcap.Flow
	n := 0
	for f, err := range r.Flows() {
		if err != nil {
			b.Fatal(err)
		}
		if len(flows) == 4096 {
			break
		}
		if n++; n%64 != 0 {
			continue
		}
		c := *f
		c.Raw = nil
		flows = append(flows, c)
	}
	r.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Label(&flows[i%len(flows)])
	}
	b.StopTimer()
	s := p.Summary()
	b.ReportMetric(100*s.MatchRate(), "%matched")
}

// BenchmarkPlanLabelStream labels every flow of the 1M file in file order,
// as a rewrite does, so that the index is read with the real access
// pattern (BenchmarkPlanLabel's few thousand flows keep their part of it
// in the cache). The flows' keys are held compactly and copied into one
// Flow before each call; ns/op is per flow.
func BenchmarkPlanLabelStream(b *testing.B) {
	p, r := benchPlan(b)
	type key struct {
		src, dst          netip.Addr
		first, last       uint64
		sport, dport      uint16
		proto             uint8
		hasUser, nonEmpty bool
	}
	var keys []key
	for f, err := range r.Flows() {
		if err != nil {
			b.Fatal(err)
		}
		keys = append(keys, key{f.SrcAddr, f.DstAddr, f.MsecFirst, f.MsecLast, f.SrcPort, f.DstPort, f.Proto,
			f.HasUsername(), f.Username != ""})
	}
	r.Close()
	var f nfcap.Flow
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := &keys[i%len(keys)]
		f.SrcAddr, f.DstAddr, f.MsecFirst, f.MsecLast = k.src, k.dst, k.first, k.last
		f.SrcPort, f.DstPort, f.Proto = k.sport, k.dport, k.proto
		f.Username = ""
		if k.nonEmpty {
			f.Username = "asa-user"
		}
		p.Label(&f)
	}
	b.StopTimer()
	s := p.Summary()
	b.ReportMetric(100*s.MatchRate(), "%matched")
}

// BenchmarkJobRun measures a whole enrichment (window, index, rewrite,
// fsync and rename) of a copy of the 1M benchmark file, with the 10,000
// bindings and with none: the difference is what looking flows up and
// labelling them costs over the rewrite itself. Copying the file is not
// timed.
func BenchmarkJobRun(b *testing.B) {
	nf, bindings := benchInputs(b)
	empty := filepath.Join(b.TempDir(), "empty.json")
	if err := os.WriteFile(empty, []byte(`{"version": 1, "hosts": []}`), 0o644); err != nil {
		b.Fatal(err)
	}
	src, err := os.ReadFile(nf)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, bindings string }{{"bindings=10000", bindings}, {"bindings=0", empty}} {
		b.Run(c.name, func(b *testing.B) {
			job, err := NewJob(Options{Sources: []Source{NewBindingsFile(c.bindings)}, Overwrite: true})
			if err != nil {
				b.Fatal(err)
			}
			path := filepath.Join(b.TempDir(), "nfcapd.202311142210")
			b.SetBytes(int64(len(src)))
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := os.WriteFile(path, src, 0o644); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				s, err := job.Run(context.Background(), path, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(100*s.MatchRate(), "%matched")
			}
		})
	}
}
