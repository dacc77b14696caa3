package nfcap_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

// benchFile returns a large benchmark file made by
// `make bench-data` (../shared/fixtures/make-fixtures.sh --bench), or skips.
// NETDUMPER_BENCH_DATA overrides the directory (default bench/data).
func benchFile(b *testing.B, name string) string {
	dir := os.Getenv("NETDUMPER_BENCH_DATA")
	if dir == "" {
		root, err := fixtures.ModuleRoot()
		if err != nil {
			b.Fatal(err)
		}
		dir = filepath.Join(root, "bench", "data")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		b.Skipf("benchmark file %s missing: run make bench-data (%v)", p, err)
	}
	return p
}

// benchEachCompression runs fn as a sub-benchmark per compression, on a
// Reader of the 1M-record benchmark file in that compression (opened anew
// for each iteration; bytes per second are of the file).
func benchEachCompression(b *testing.B, fn func(b *testing.B, r *nfcap.Reader)) {
	for _, comp := range []string{"none", "lzo", "lz4", "bz2"} {
		b.Run(comp, func(b *testing.B) {
			path := benchFile(b, "v9-bench-1000000."+comp+".nf")
			fi, _ := os.Stat(path)
			b.SetBytes(fi.Size())
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{})
				if err != nil {
					b.Fatal(err)
				}
				fn(b, r)
				r.Close()
			}
		})
	}
}

// BenchmarkReadFlows decodes every flow of the 1M-record benchmark file in
// each compression. Convert the LZ4 file with `nfdump -r IN -w OUT -z|-j`
// (or no flag for none) to get v9-bench-1000000.{none,lzo,bz2}.nf.
func BenchmarkReadFlows(b *testing.B) {
	benchEachCompression(b, func(b *testing.B, r *nfcap.Reader) {
		for _, err := range r.Flows() {
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// discardAt is a WriteAt sink: the benchmark measures the rewrite, not a
// disk.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// BenchmarkRewrite labels every flow of the 1M-record benchmark file in
// each compression (same compression out), writing nowhere; with
// -benchmem it shows what the pipeline allocates per file.
func BenchmarkRewrite(b *testing.B) {
	label := func(*nfcap.Flow) (string, bool) { return "nginx-worker", true }
	benchEachCompression(b, func(b *testing.B, r *nfcap.Reader) {
		if _, err := nfcap.Rewrite(context.Background(), r, discardAt{}, label, nfcap.RewriteOptions{Overwrite: true}); err != nil {
			b.Fatal(err)
		}
	})
}
