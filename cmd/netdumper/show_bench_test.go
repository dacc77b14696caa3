package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/netdumper/netdumper/internal/flowfmt"
)

// BenchmarkShow decodes and formats ("fmt:%line %uname") the 1M-record
// benchmark file in every compression. The file comes from
// make-fixtures.sh --bench (make bench-data): $BENCH_DATA, default
// bench/data at the repository root. The other compressions are made with
// the real nfdump. Each iteration reads the whole file.
func BenchmarkShow(b *testing.B) {
	dir := os.Getenv("BENCH_DATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "bench", "data")
	}
	src := filepath.Join(dir, "v9-bench-1000000.lz4.nf")
	if _, err := os.Stat(src); err != nil {
		b.Skipf("benchmark file missing (make bench-data or set BENCH_DATA): %v", err)
	}
	nfdump, err := exec.LookPath("nfdump")
	if err != nil {
		b.Skip("nfdump is needed to convert the benchmark file")
	}
	tmp := b.TempDir()
	for _, c := range []struct{ name, flag string }{{"lz4", ""}, {"none", ""}, {"lzo", "-z"}, {"bz2", "-j"}} {
		path := src
		if c.name != "lz4" {
			path = filepath.Join(tmp, c.name+".nf")
			args := []string{"-r", src, "-w", path}
			if c.flag != "" {
				args = append(args, c.flag)
			}
			if out, err := exec.Command(nfdump, args...).CombinedOutput(); err != nil {
				b.Fatalf("nfdump %v: %v\n%s", args, err, out)
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			fm := flowfmt.MustParse(defaultShowFormat, flowfmt.Options{})
			b.SetBytes(fi.Size())
			var flows uint64
			for b.Loop() {
				p := &printer{fm: fm, out: io.Discard, errs: io.Discard, buf: make([]byte, 0, flushSize+4096)}
				if err := p.printFile(context.Background(), path); err != nil {
					b.Fatal(err)
				}
				if err := p.flush(); err != nil {
					b.Fatal(err)
				}
				flows = p.sum.Passed
			}
			b.ReportMetric(float64(flows)*float64(b.N)/b.Elapsed().Seconds(), "flows/s")
		})
	}
}
