package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/internal/flowfmt"
	"github.com/netdumper/netdumper/internal/nfdir"
	"github.com/netdumper/netdumper/internal/services"
	"github.com/netdumper/netdumper/nfcap"
	"github.com/netdumper/netdumper/tracker"
)

type enrichOptions struct {
	state     string
	local     bool
	bindings  []string
	label     string
	unknown   string
	overwrite bool
	dryRun    bool
	yes       bool
	format    string
	sample    int
	asJSON    bool
	tolerance time.Duration
	compress  string
	watch     string
	delay     time.Duration
	since     time.Duration
	services  string
	wait      time.Duration
	trackers  trackerFlags
	log       logFlags
}

func newEnrichCmd(e env) *cobra.Command {
	var o enrichOptions
	cmd := &cobra.Command{
		Use:   "enrich [flags] PATH...",
		Short: "Write the owning process of each flow into nfdump files",
		Long: `enrich labels the flow records of nfdump files with the process that owned
each flow's socket when the flow happened, and rewrites the files in place
(atomically: the original is replaced only by a complete, synced new file).
nfdump -o "fmt:%line %uname" then shows the label.

PATH is an nfdump file or a directory, searched recursively for nfcapd's
rotated files (nfcapd.YYYYMMDDhhmm[ss], flat or in -S subdirectories);
nfcapd.current.* is always skipped.

Bindings come from the local tracker's history in --state (the default,
what "netdumper serve" records on this host) and from --bindings files (the
JSON of "netdumper bindings export"). Sources named explicitly replace the
local default, so results are reproducible; --local adds it back. For each
file only the history overlapping its time window is used.

A flow is matched on its source side first, then its destination side:
exact 5-tuple, then a listener on the exact address, then a wildcard
listener on an address the host owned, within --tolerance of the flow's
times.

The --label template may use these fields:
  ` + enrich.FieldNames + `
Labels are cut to 65 bytes. Flows nothing matched stay without a username
unless --unknown is given; it may use {service}, the name of the flow's
well-known port ("icmp" or "icmp6" for ICMP, "-" when unknown). A username
a record already carries is kept; --overwrite replaces it, but only with
the label of a binding that matched, never with the --unknown text.

-z changes the files' compression; nfdump 1.7.1 (Debian 12's) cannot read
zstd, so enrich warns when it writes it.

Without --yes, enrich shows what it would do and asks on a terminal (with
--json on stderr, so that stdout carries only the JSON of the real run); any
answer but y or yes changes nothing and exits 1 ("nothing changed"). With no
terminal it refuses (exit 2). --dry-run touches nothing. --watch needs --yes
(a daemon cannot ask for each file) and cannot be combined with --dry-run;
--delay and --since are for --watch only.

Each file's summary ends with its top unmatched endpoints: the host's end of
the unmatched flows, with their count. An endpoint marked "?" ("local": false
in JSON) is a guess, the end with the lower port, because no source knew
which end was the host's. In --json's "written" object, "placeholder" is
always 0: --unknown labels count as "inserted" or "replaced".

Exit status: 0 all files done, 1 some file failed or some PATH could not be
searched (each is named with the reason; the others are still done), 2 usage
error.`,
		Example: `  netdumper enrich --yes /var/cache/nfdump
  netdumper enrich --dry-run --bindings web1.json nfcapd.202311142210
  netdumper enrich --yes --unknown '{service}***' --label '{pid}/{process}' DIR
  nfcapd -w /var/cache/nfdump -x "/usr/local/bin/netdumper enrich --yes --wait 3s %d/%f" ...
  netdumper enrich --yes --watch /var/cache/nfdump`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.watch != "" {
				if len(args) > 0 {
					return usagef("--watch takes no PATH arguments")
				}
				return nil
			}
			return needInputs(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(cmd.Flags().Changed); err != nil {
				return err
			}
			return runEnrich(cmd.Context(), e, &o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.state, "state", defaultStateDir(e), "the local tracker's state `DIR`")
	f.BoolVar(&o.local, "local", false, "also use the local history when --bindings (or --tracker) is given (needs netdumper serve on this host)")
	f.StringArrayVar(&o.bindings, "bindings", nil, "bindings `FILE` (JSON of netdumper bindings export); repeatable")
	f.StringVar(&o.label, "label", "{process}", "label `TEMPLATE` for matched flows")
	f.StringVar(&o.unknown, "unknown", "", "label `TEXT` for unmatched flows without a username (may use {service}); never replaces one; default: none")
	f.BoolVar(&o.overwrite, "overwrite", false, "replace usernames records already carry with the label of a match (default: keep them)")
	f.BoolVar(&o.dryRun, "dry-run", false, "change nothing; print the first records as they would be and a summary")
	f.BoolVarP(&o.yes, "yes", "y", false, "rewrite without asking")
	f.StringVarP(&o.format, "output", "o", defaultShowFormat, "record `FORMAT` for --dry-run, as in show")
	f.IntVar(&o.sample, "sample", 20, "records printed per file by --dry-run")
	f.BoolVar(&o.asJSON, "json", false, "print one JSON summary object per file")
	f.DurationVar(&o.tolerance, "tolerance", tracker.DefaultTolerance, "clock-skew tolerance around each flow's times (0: none)")
	f.StringVarP(&o.compress, "compress", "z", "", "write with this compression (none, lzo, lz4, bz2, zstd: nfdump 1.7.1 cannot read it); default: keep")
	f.StringVar(&o.watch, "watch", "", "keep running: enrich each file nfcapd rotates into `DIR`, once (needs --yes)")
	f.DurationVar(&o.delay, "delay", 15*time.Second, "with --watch: wait this long after a file rotates")
	f.DurationVar(&o.since, "since", 24*time.Hour, "with --watch: at start, take files modified this recently (0: all)")
	f.DurationVar(&o.wait, "wait", 0, "wait this long before starting (from nfcapd -x: let the trackers record the interval's last seconds)")
	f.StringVar(&o.services, "services", "/etc/services", "services `FILE` for {service} (built-in table when missing)")
	o.trackers.bind(f)
	o.log.bind(f, "", " (default: info with --watch, else warn)")
	return cmd
}

// parseTemplates compiles the --label and --unknown templates (no
// --unknown: nil); a bad one is a usage error naming its flag.
func parseTemplates(label, unknown string) (l, u *enrich.Template, err error) {
	if l, err = enrich.ParseTemplate(label); err != nil {
		return nil, nil, usageError{fmt.Errorf("--label: %w", err)}
	}
	if unknown != "" {
		if u, err = enrich.ParseTemplate(unknown); err != nil {
			return nil, nil, usageError{fmt.Errorf("--unknown: %w", err)}
		}
	}
	return l, u, nil
}

// zstdWarning is logged when enrich rewrites files with ZSTD.
const zstdWarning = "-z zstd: nfdump 1.7.1 (Debian 12's) cannot read zstd files; use lz4, lzo or bz2 where nfdump 1.7 must read them"

// buildJob turns the options into an enrich job.
func buildJob(e env, o *enrichOptions, log *slog.Logger) (*enrich.Job, error) {
	label, unknown, err := parseTemplates(o.label, o.unknown)
	if err != nil {
		return nil, err
	}
	svc, err := services.Load(o.services)
	if err != nil {
		return nil, err
	}
	opts := enrich.Options{Label: label, Unknown: unknown, Services: svc, Overwrite: o.overwrite,
		Tolerance: enrich.ToleranceOption(o.tolerance), Logger: log}
	if o.compress != "" {
		c, err := nfcap.ParseCompression(o.compress)
		if err != nil {
			return nil, usageError{fmt.Errorf("-z %s: %w", o.compress, err)}
		}
		opts.Recompress, opts.Compression = true, c
		if c == nfcap.CompressZSTD && !o.dryRun {
			log.Warn(zstdWarning)
		}
	}
	explicit := false
	for _, b := range o.bindings {
		src, err := loadBindings(b)
		if err != nil {
			return nil, err
		}
		opts.Sources = append(opts.Sources, src)
		explicit = true
	}
	pool, err := o.trackers.pool(e, log)
	if err != nil {
		return nil, err
	}
	if pool != nil {
		opts.Sources = append(opts.Sources, pool)
		explicit = true
	}
	if !explicit || o.local {
		if o.state == "" {
			return nil, usagef("no state directory for the local history: give --state, --bindings or --tracker")
		}
		opts.Sources = append(opts.Sources, &enrich.LocalStore{Dir: o.state, Fallback: localDaemonSource(e, &o.trackers, log)})
	}
	return enrich.NewJob(opts)
}

// loadBindings reads the --bindings file path. Its errors name the flag
// and the file once ("--bindings F: is a directory", "--bindings
// F:3: ..."): the file system's errors, which name it again, are cut to
// their cause.
func loadBindings(path string) (*enrich.BindingsFile, error) {
	fail := func(err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Path == path {
			return fmt.Errorf("--bindings %s: %w", path, pe.Err)
		}
		if msg := err.Error(); strings.HasPrefix(msg, path+":") {
			return fmt.Errorf("--bindings %w", err) // names the file and line
		}
		return fmt.Errorf("--bindings %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fail(err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("--bindings %s: is a directory; want a bindings file (the JSON of netdumper bindings export)", path)
	}
	src := enrich.NewBindingsFile(path)
	if err := src.Load(); err != nil {
		return nil, fail(err)
	}
	return src, nil
}

// defaultStateDir is the state directory serve and enrich share by
// default ("" when there is none, e.g. HOME unset; --state is then needed).
func defaultStateDir(e env) string {
	d, err := tracker.StateDirFor(os.Geteuid(), e.getenv)
	if err != nil {
		return ""
	}
	return d
}

func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// check rejects flag values out of range, flags given where they mean
// nothing (changed tells which flags were given) and combinations of
// flags that cannot work together.
func (o *enrichOptions) check(changed func(name string) bool) error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--tolerance", o.tolerance}, {"--wait", o.wait}, {"--delay", o.delay}, {"--since", o.since}} {
		if err := checkNotNegative(d.flag, d.v); err != nil {
			return err
		}
	}
	if o.sample < 0 {
		return usagef("--sample %d: must not be negative", o.sample)
	}
	if err := o.trackers.check(); err != nil {
		return err
	}
	if o.watch == "" {
		for _, f := range []string{"delay", "since"} {
			if changed(f) {
				return usagef("--%s is only for --watch", f)
			}
		}
	}
	if o.watch != "" {
		if o.dryRun {
			return usagef("--watch and --dry-run cannot be combined: the watcher rewrites every file it takes (run --dry-run on the files instead)")
		}
		if !o.yes {
			return usagef("--watch needs --yes: the watcher rewrites each file as nfcapd rotates it and cannot ask for each one")
		}
	}
	return nil
}

func runEnrich(ctx context.Context, e env, o *enrichOptions, args []string) error {
	// A daemon (--watch) says what it does; a batch run only what is wrong.
	level := "warn"
	if o.watch != "" {
		level = "info"
	}
	log, err := o.log.logger(e.stderr, level)
	if err != nil {
		return err
	}
	if !o.dryRun && !o.yes && !isTerminal(e.stdin) {
		return usagef("not on a terminal: pass --yes to rewrite the files without asking (or --dry-run to see what would change)")
	}
	// -o is checked before any file is read, as show does: a bad format
	// is a usage error, not a failure of every file.
	fm, err := flowfmt.Parse(o.format, flowfmt.Options{Location: location(e)})
	if err != nil {
		return usageError{fmt.Errorf("-o %q: %w", o.format, err)}
	}
	job, err := buildJob(e, o, log)
	if err != nil {
		return err
	}
	if o.watch != "" {
		return runWatch(ctx, e, o, job, log)
	}
	if o.wait > 0 {
		select {
		case <-time.After(o.wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	files, badPaths, err := findFiles(ctx, e, o, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		if badPaths > 0 {
			return failedErr(badPaths, 0, 0)
		}
		return fmt.Errorf("no nfcapd files found in %s", strings.Join(args, " "))
	}
	if o.dryRun || !o.yes {
		// The preview. Before a confirmation with --json, it is the human
		// summary on stderr, beside the question, so that stdout carries
		// only the JSON of the real run.
		out, asJSON := e.stdout, o.asJSON
		if !o.dryRun && o.asJSON {
			out, asJSON = e.stderr, false
		}
		pv := preview{out: out, errs: e.stderr, asJSON: asJSON}
		if o.dryRun && !asJSON && o.sample > 0 {
			pv.fm, pv.sample = fm, o.sample
		}
		sums, bad := pv.run(ctx, job, files)
		if !o.dryRun && len(bad) > 0 {
			// Nothing is rewritten when a file fails before the
			// question; with --json each failure still gets its object.
			if o.asJSON {
				for i := range bad {
					printSummary(e.stdout, true, &bad[i])
				}
			}
			fmt.Fprintln(e.stderr, "netdumper: nothing changed: leave out or fix the files that failed, and run again")
		}
		if o.dryRun || len(bad) > 0 {
			return failedErr(badPaths, len(bad), len(files))
		}
		if !confirm(e, fmt.Sprintf("Rewrite %s (%s, %.1f%% matched)?", count(len(files), "file", "files"), count(totalFlows(sums), "flow", "flows"), matchRate(sums)*100)) {
			return exitCodeError{code: exitFailure, err: errors.New("nothing changed")}
		}
	}
	failed := 0
	progress := isTerminal(e.stderr) && !o.asJSON
	for i, p := range files {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var prog func(done, total int)
		if progress {
			prog = progressBar(e.stderr, fmt.Sprintf("[%d/%d] %s", i+1, len(files), filepath.Base(p)))
		}
		sum, err := job.Run(ctx, p, prog)
		if progress {
			fmt.Fprint(e.stderr, "\r\033[K")
		}
		if err != nil {
			failed++
			fmt.Fprintf(e.stderr, "netdumper: %s\n", pathError(p, err))
			if !o.asJSON {
				continue
			}
		}
		printSummary(e.stdout, o.asJSON, &sum)
	}
	// What rewrites killed earlier (kill -9, a crash) left behind.
	dirs := map[string]bool{}
	for _, p := range files {
		dirs[filepath.Dir(p)] = true
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs[filepath.Dir(real)] = true // where the rewrite of a link writes
		}
	}
	enrich.RemoveStaleTemps(log, slices.Sorted(maps.Keys(dirs))...)
	return failedErr(badPaths, failed, len(files))
}

// findFiles returns the files of the PATH arguments. A PATH that cannot be
// searched (missing, unreadable, nfcapd's open file), and an entry below a
// PATH that cannot be read, is named with the reason on stderr (and as a
// JSON object with --json) and counted in bad; the others are still
// searched. err is set only when ctx ends.
func findFiles(ctx context.Context, e env, o *enrichOptions, args []string) (files []string, bad int, err error) {
	for _, arg := range args {
		var found []string
		err := nfdir.Walk(ctx, []string{arg}, func(f nfdir.File) error {
			found = append(found, f.Path)
			return nil
		})
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if sk := nfdir.Skipped(err); sk != nil {
			// An entry that cannot be read fails alone; the files found
			// are still enriched.
			for _, skipped := range sk {
				bad++
				fmt.Fprintf(e.stderr, "netdumper: %v\n", skipped)
				if o.asJSON {
					printSummary(e.stdout, true, &enrich.Summary{Path: skipped.Path, DryRun: o.dryRun, Error: skipped.Error()})
				}
			}
			err = nil
		}
		if err != nil {
			bad++
			fmt.Fprintf(e.stderr, "netdumper: %s\n", pathError(arg, err))
			if o.asJSON {
				printSummary(e.stdout, true, &enrich.Summary{Path: arg, DryRun: o.dryRun, Error: err.Error()})
			}
			continue
		}
		files = append(files, found...)
	}
	return files, bad, nil
}

// pathError is err as a message that names path once: errors of the file
// system ("open PATH: ...") and of nfcap ("PATH: ...") already name it.
func pathError(path string, err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, path+": ") || strings.Contains(msg, " "+path+": ") {
		return msg
	}
	return path + ": " + msg
}

// failedErr is the exit-1 error of a run where bad PATH arguments could
// not be searched and failed of total files failed (nil when none).
func failedErr(bad, failed, total int) error {
	var msgs []string
	if bad > 0 {
		msgs = append(msgs, count(bad, "PATH argument", "PATH arguments")+" could not be searched")
	}
	if failed > 0 {
		msgs = append(msgs, fmt.Sprintf("%d of %s failed", failed, count(total, "file", "files")))
	}
	if len(msgs) == 0 {
		return nil
	}
	return exitCodeError{code: exitFailure, err: errors.New(strings.Join(msgs, "; "))}
}

// preview says where and how dry runs print.
type preview struct {
	out, errs io.Writer // summaries and records; errors
	asJSON    bool      // summaries as JSON objects
	// fm, when set, prints the first sample records of each file as they
	// would be after enrichment.
	fm     *flowfmt.Format
	sample int
}

// run dry-runs each file and prints its summary (and records), returning
// the summaries of the files that passed and of those that failed.
func (pv *preview) run(ctx context.Context, job *enrich.Job, files []string) (sums, failed []enrich.Summary) {
	fm := pv.fm
	w := bufio.NewWriter(pv.out)
	defer w.Flush()
	var buf []byte
	for _, p := range files {
		n := 0
		if fm != nil {
			fmt.Fprintf(w, "== %s\n", p)
			if h := fm.Header(); h != "" {
				fmt.Fprintln(w, h)
			}
		}
		sum, err := job.DryRun(ctx, p, func(f *nfcap.Flow, username string) bool {
			if fm == nil {
				return false
			}
			f.Username = username
			if username != "" {
				f.Elements |= 1 << nfcap.ElemNSELUser
			}
			buf = fm.AppendRecord(buf[:0], f)
			w.Write(buf)
			n++
			return n < pv.sample
		})
		if err != nil {
			failed = append(failed, sum)
			w.Flush()
			fmt.Fprintf(pv.errs, "netdumper: %s\n", pathError(p, err))
			if pv.asJSON { // one object per file, as the real run prints
				printSummary(w, true, &sum)
			}
			continue
		}
		sums = append(sums, sum)
		printSummary(w, pv.asJSON, &sum)
	}
	return sums, failed
}

func totalFlows(s []enrich.Summary) int64 {
	var n int64
	for i := range s {
		n += s[i].Flows
	}
	return n
}

func matchRate(s []enrich.Summary) float64 {
	var n, m int64
	for i := range s {
		n += s[i].Flows
		m += s[i].Matched()
	}
	if n == 0 {
		return 0
	}
	return float64(m) / float64(n)
}

// printSummary prints a file's summary as text or one JSON object.
func printSummary(w io.Writer, asJSON bool, s *enrich.Summary) {
	if asJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	verb := "enriched"
	if s.DryRun {
		verb = "would enrich"
	}
	if s.Error != "" {
		fmt.Fprintf(w, "%s: failed: %s\n", s.Path, s.Error)
		return
	}
	fmt.Fprintf(w, "%s: %s %d flows: %d matched (%.1f%%: %d 5-tuple, %d listener, %d wildcard), %d unmatched; ",
		s.Path, verb, s.Flows, s.Matched(), s.MatchRate()*100, s.Exact, s.Listener, s.Wildcard, s.Unmatched)
	if s.First.IsZero() {
		fmt.Fprint(w, "no flows, no time window")
	} else {
		fmt.Fprintf(w, "%d bindings for %s .. %s", s.Bindings, s.First.UTC().Format(time.DateTime), s.Last.UTC().Format(time.DateTime))
	}
	switch {
	case s.DryRun:
	case s.Written.Unchanged:
		fmt.Fprintf(w, "; nothing to change (%d usernames kept), file left as it was", s.Written.Kept)
	default:
		fmt.Fprintf(w, "; written: %d inserted, %d replaced, %d kept", s.Written.Inserted, s.Written.Replaced, s.Written.Kept)
		if s.Written.TooLarge > 0 {
			fmt.Fprintf(w, ", %d too large for a username", s.Written.TooLarge)
		}
	}
	fmt.Fprintln(w)
	if len(s.TopUnmatched) > 0 {
		fmt.Fprintf(w, "  top unmatched endpoints:")
		for _, ep := range s.TopUnmatched {
			side := ""
			if !ep.Local {
				side = "?"
			}
			fmt.Fprintf(w, " %s %s%s (%d)", ep.Proto, endpointString(ep), side, ep.Flows)
		}
		fmt.Fprintln(w)
	}
}

func endpointString(ep enrich.Endpoint) string {
	if ep.Proto == "icmp" || ep.Proto == "icmp6" {
		return ep.Addr.String()
	}
	if ep.Addr.Is6() {
		return fmt.Sprintf("[%s]:%d", ep.Addr, ep.Port)
	}
	return fmt.Sprintf("%s:%d", ep.Addr, ep.Port)
}

// confirm asks a yes/no question on the terminal.
func confirm(e env, q string) bool {
	fmt.Fprintf(e.stderr, "%s [y/N] ", q)
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

// progressBar returns a progress callback drawing a one-line bar on w.
func progressBar(w io.Writer, label string) func(done, total int) {
	return func(done, total int) {
		if total <= 0 {
			return
		}
		const width = 30
		n := done * width / total
		fmt.Fprintf(w, "\r\033[K%s [%s%s] %3d%%", label, strings.Repeat("=", n), strings.Repeat(" ", width-n), done*100/total)
	}
}

func runWatch(ctx context.Context, e env, o *enrichOptions, job *enrich.Job, log *slog.Logger) error {
	if fi, err := os.Stat(o.watch); err != nil || !fi.IsDir() {
		return usagef("--watch %s: not a directory", o.watch)
	}
	// The done log knows files by absolute path: --watch w1 and
	// --watch $PWD/w1 are the same files.
	dir, err := filepath.Abs(o.watch)
	if err != nil {
		return fmt.Errorf("--watch %s: %w", o.watch, err)
	}
	done, err := enrich.OpenDoneLog(filepath.Join(o.state, "enriched.log"))
	if err != nil {
		return err
	}
	defer done.Close()
	log.Info("watching", "dir", dir, "delay", o.delay, "state", o.state)
	return job.Watch(ctx, enrich.WatchOptions{Dir: dir, Delay: o.delay, Since: o.since, Done: done, Logger: log,
		Report: func(s enrich.Summary, err error) {
			// Watch logs a failure once, with its retry; as in a batch
			// run, only scripts (--json) also get it as a summary.
			if err == nil || o.asJSON {
				printSummary(e.stdout, o.asJSON, &s)
			}
		}})
}

// localDaemonSource returns how the local store source reaches a running
// daemon that holds the store: its API, as serve.json describes it, with
// the TLS flags of tf, logging to log.
func localDaemonSource(e env, tf *trackerFlags, log *slog.Logger) func(context.Context, tracker.DaemonInfo) (enrich.Source, error) {
	return func(_ context.Context, info tracker.DaemonInfo) (enrich.Source, error) {
		return daemonClientFor(e, info, tf, log)
	}
}
