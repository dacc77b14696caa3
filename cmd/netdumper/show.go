package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/netdumper/netdumper/internal/flowfmt"
	"github.com/netdumper/netdumper/internal/nfdir"
	"github.com/netdumper/netdumper/nfcap"
)

// defaultShowFormat is what netdumper show prints without -o.
const defaultShowFormat = "fmt:%line %uname"

type showOptions struct {
	format string
	quiet  bool
	plain  bool
}

func newShowCmd(e env) *cobra.Command {
	var o showOptions
	cmd := &cobra.Command{
		Use:   "show [flags] FILE|DIR...",
		Short: "Print the flows of nfdump files as nfdump does",
		Long: `show prints the flow records of nfdump files (layout 2, any compression)
the way nfdump 1.7.1 prints them with -o FORMAT.

FORMAT is one of nfdump's predefined formats (line, long, extended, biline,
bilong, nsel, nel; add "6" for full IPv6 addresses, e.g. line6), "fmt:"
followed by nfdump %tokens and text (default "` + defaultShowFormat + `"), "csv"
(nfdump's CSV layout) or "json" (one JSON object per record; the schema is in
the flowfmt package documentation).

Without -q the output is nfdump's: a header line, the records, and the
summary lines, except nfdump's final timing line ("Sys: ..."). With -q only
the records are printed, or "No matching flows" when there are none, exactly
as nfdump -q prints them. JSON output never has a header or a summary.

A DIR is read recursively in name order; only files named nfcapd.* are read,
not the open files nfcapd.current.*. A FILE is always read. Times are printed
in the local time zone ($TZ), as nfdump does.

Exit status: 0 when every file was read, 1 when a file could not be read
(the others are still printed), 2 for a usage error.`,
		Example: `  netdumper show /var/cache/nfdump
  TZ=UTC netdumper show -q -o "fmt:%ts %sap -> %dap %uname" nfcapd.202311142210
  netdumper show -o json nfcapd.202311142210 | jq .username`,
		Args: needInputs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runShow(cmd.Context(), e, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.format, "output", "o", defaultShowFormat, "output `FORMAT`: line, long, extended, fmt:..., csv, json")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the records (no header, no summary), like nfdump -q")
	f.BoolVarP(&o.plain, "plain", "N", false, "print plain numbers instead of 1.2 M, like nfdump -N")
	return cmd
}

// needInputs requires at least one argument, named as the command's
// usage line names it (its last word: "PATH...", "FILE|DIR...").
func needInputs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		what := "FILE"
		if f := strings.Fields(cmd.Use); len(f) > 1 {
			what = strings.TrimSuffix(f[len(f)-1], "...")
		}
		return usagef("%s needs at least one %s; see %s --help", cmd.Name(), what, cmd.CommandPath())
	}
	return nil
}

// inputFiles expands the command line into the files to read, in order: a
// FILE as given (even nfcapd's open file: reading it is harmless), a DIR's
// rotated nfcapd files as internal/nfdir finds them. Problems with single
// arguments are reported to stderr and counted; the other arguments are
// still expanded.
func inputFiles(args []string, stderr io.Writer) (files []string, failed int) {
	for _, arg := range args {
		if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
			files = append(files, arg)
			continue
		}
		err := nfdir.Walk(context.Background(), []string{arg}, func(f nfdir.File) error {
			files = append(files, f.Path)
			return nil
		})
		if sk := nfdir.Skipped(err); sk != nil {
			// The files that could be found are still read.
			for _, e := range sk {
				fmt.Fprintf(stderr, "netdumper: skipped: %v\n", e)
			}
			failed += len(sk)
		} else if err != nil {
			fmt.Fprintf(stderr, "netdumper: %v\n", err)
			failed++
		}
	}
	return files, failed
}

// flushSize is how much formatted output is collected before a write.
const flushSize = 64 << 10

// location returns the time zone named by $TZ as the environment e sees it
// (a zone name, a zone file or a POSIX rule, as nfdump reads it), or
// time.Local when it is unset or names nothing (UTC then, as for nfdump).
func location(e env) *time.Location {
	if e.getenv != nil {
		if tz := e.getenv("TZ"); tz != "" {
			if loc, err := flowfmt.Location(tz); err == nil {
				return loc
			}
		}
	}
	return time.Local
}

func runShow(ctx context.Context, e env, o showOptions, args []string) error {
	loc := location(e)
	fm, err := flowfmt.Parse(o.format, flowfmt.Options{Plain: o.plain, Location: loc})
	if err != nil {
		return usageError{err}
	}
	files, failed := inputFiles(args, e.stderr)

	p := &printer{fm: fm, out: e.stdout, errs: e.stderr, buf: make([]byte, 0, flushSize+4096)}
	if !o.quiet && fm.Header() != "" {
		p.buf = append(p.buf, fm.Header()...)
		p.buf = append(p.buf, '\n')
	}
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.printFile(ctx, name); err != nil {
			if errors.Is(err, errOutput) {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Flush what was printed so far, so the message follows it.
			if err := p.flush(); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "netdumper: %v\n", err)
			failed++
		}
	}
	if p.sum.Passed == 0 && fm.Kind() != flowfmt.JSON {
		p.buf = append(p.buf, flowfmt.NoMatchingFlows+"\n"...)
	}
	if !o.quiet {
		switch fm.Kind() {
		case flowfmt.Text:
			p.buf = p.sum.AppendText(p.buf, o.plain, loc)
		case flowfmt.CSV:
			p.buf = p.sum.AppendCSV(p.buf)
		}
	}
	if err := p.flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("show: %s could not be read completely (see above)", count(failed, "input", "inputs"))
	}
	return nil
}

// errOutput marks failures to write the output, which end the command.
var errOutput = errors.New("writing output")

// printer formats the flows of one or more files into one output stream.
type printer struct {
	fm   *flowfmt.Format
	out  io.Writer
	errs io.Writer // warnings
	buf  []byte
	sum  flowfmt.Summary
	flow nfcap.Flow
}

func (p *printer) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	_, err := p.out.Write(p.buf)
	p.buf = p.buf[:0]
	if err != nil {
		return fmt.Errorf("%w: %w", errOutput, err)
	}
	return nil
}

// printFile prints every flow record of the named file. Records printed
// before an error stay printed, as with nfdump.
func (p *printer) printFile(ctx context.Context, name string) error {
	r, err := nfcap.OpenFile(name, nfcap.ReaderOptions{AppendixErrors: true})
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.AppendixError(); err != nil {
		// As nfdump: say so, and print the flows all the same.
		fmt.Fprintf(p.errs, "netdumper: %v; reading the flows without it\n", err)
	}
	p.sum.AddFile(&r.Appendix().Stat)
	for {
		// A block with a damaged record comes with its error: the records
		// before that one are printed first, as nfdump prints them.
		b, err := r.NextBlockPartial()
		if err == io.EOF {
			return nil
		}
		if b == nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		p.sum.BytesRead += uint64(len(b.Data))
		if b.Header.Type != nfcap.BlockTypeData {
			p.sum.BlocksSkipped++
			continue
		}
		if perr := p.printBlock(r, b); perr != nil {
			return perr
		}
		if err != nil {
			return err
		}
	}
}

// printBlock prints the flow records of one data block. The reader has
// already checked the record framing of the block.
func (p *printer) printBlock(r *nfcap.Reader, b *nfcap.Block) error {
	data := b.Data
	off := 0
	for i := uint32(0); i < b.Header.NumRecords && len(data)-off >= nfcap.RecordHeaderSize; i++ {
		typ := uint16(data[off]) | uint16(data[off+1])<<8
		size := int(data[off+2]) | int(data[off+3])<<8
		if size < nfcap.RecordHeaderSize || size > len(data)-off {
			return &nfcap.FormatError{File: r.Name(), Block: b.Index, Offset: b.Offset, RecordOffset: off,
				Err: fmt.Errorf("record size %d runs past the block: %w", size, nfcap.ErrCorrupt)}
		}
		if typ == nfcap.RecordTypeV3 {
			if err := nfcap.DecodeFlow(data[off:off+size], &p.flow); err != nil {
				return &nfcap.FormatError{File: r.Name(), Block: b.Index, Offset: b.Offset, RecordOffset: off, Err: err}
			}
			p.sum.Processed++
			p.sum.AddFlow(&p.flow)
			p.buf = p.fm.AppendRecord(p.buf, &p.flow)
			if len(p.buf) >= flushSize {
				if err := p.flush(); err != nil {
					return err
				}
			}
		}
		off += size
	}
	return nil
}
