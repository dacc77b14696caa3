// Command rewrite is a benchmark driver: it rewrites an nfdump file with a
// label in every flow, the way `netdumper enrich` does, so bench/rewrite.sh
// can time it side by side with `nfdump -r IN -w OUT`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/netdumper/netdumper/nfcap"
)

func main() {
	comp := flag.String("z", "", "output compression (default: same as input)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile")
	flag.Parse()
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(48 << 20) // as netdumper sets it
	}
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: rewrite [-z none|lzo|lz4|bz2|zstd] IN OUT")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *comp, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "rewrite:", err)
		os.Exit(1)
	}
}

func run(in, out, comp, cpuprofile string) error {
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	opts := nfcap.RewriteOptions{Overwrite: true}
	if comp != "" {
		c, err := nfcap.ParseCompression(comp)
		if err != nil {
			return err
		}
		opts.Recompress, opts.Compression = true, c
	}
	r, err := nfcap.OpenFile(in, nfcap.ReaderOptions{})
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	label := func(f *nfcap.Flow) (string, bool) { return "nginx-worker", true }
	st, err := nfcap.Rewrite(context.Background(), r, f, label, opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, st)
	return nil
}
