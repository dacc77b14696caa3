package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/spf13/cobra"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/internal/nfdir"
	"github.com/netdumper/netdumper/internal/services"
	"github.com/netdumper/netdumper/remote"
	"github.com/netdumper/netdumper/tracker"
	"github.com/netdumper/netdumper/tui"
)

// sampleDir is the sample flow directory of netdumper's source tree, and
// sampleBindings the bindings file beside its flows.
const (
	sampleDir      = "testdata/flows"
	sampleBindings = "bindings.json"
)

type tuiOptions struct {
	dir       string
	trackers  trackerFlags
	bindings  []string
	state     string
	label     string
	unknown   string
	overwrite bool
	tolerance time.Duration
	services  string
	logFile   string
	interval  time.Duration
	source    string
	noTracker bool
}

func newTUICmd(e env) *cobra.Command {
	var o tuiOptions
	cmd := &cobra.Command{
		Use:   "tui [flags]",
		Short: "Watch live bindings, browse flow files, preview and commit labels",
		Long: `tui is the terminal interface: a live table of the host's sockets and their
processes (Bindings), the nfcapd files of a directory (Files), a file's
records as nfdump will print them once labelled (Preview: %line and %uname),
and the rewrite itself (Commit), with the same job "netdumper enrich" runs.

Directory (--dir): the current directory. In netdumper's source tree (the
current directory has no nfcapd.* files of its own but has testdata/flows)
a temporary copy of the sample directory testdata/flows is used instead, so
that commits leave the tree alone; its path is printed on exit.

Live bindings (the Bindings screen), in this order of preference:
  --tracker URL...   those trackers (netdumper serve on other hosts), each
                     followed live through its event stream;
  a running serve    when "netdumper serve" runs with --state (serve.json
                     names a live pid and an API): followed live the same way;
  embedded tracker   otherwise the TUI scans this host itself, with the
                     scanner serve uses (naming other users' processes needs
                     root), recording its history in --state like serve would
                     (or in a private temporary directory when --state
                     cannot be locked); --no-tracker turns it off.

Bindings for the preview and the commit: the history of those live sources
(for each file's time window), every --bindings FILE, and without
--bindings, DIR/bindings.json when there is one (the sample directory has
one, so that the sample files show real matches).

Logs go to --log (default: netdumper/tui.log under the user's cache
directory), never to the screen. Colours follow the terminal's background
and NO_COLOR. Press ? in the TUI for the keys.`,
		Example: `  netdumper tui
  netdumper tui --dir /var/cache/nfdump --label '{process}/{pid}'
  netdumper tui --dir /var/cache/nfdump --bindings web1.json --bindings db1.json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTUI(cmd.Context(), e, &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "flow `DIR` to browse (default: the current directory; see above)")
	o.trackers.bind(f)
	f.StringArrayVar(&o.bindings, "bindings", nil, "bindings `FILE` for the preview and the commit; repeatable")
	f.StringVar(&o.state, "state", defaultStateDir(e), "the local tracker's state `DIR`")
	f.StringVar(&o.label, "label", "{process}", "label `TEMPLATE` for matched flows")
	f.StringVar(&o.unknown, "unknown", "", "label `TEXT` for unmatched flows without a username (may use {service}); never replaces one; default: none")
	f.BoolVar(&o.overwrite, "overwrite", false, "replace usernames records already carry with the label of a match (default: keep them)")
	f.DurationVar(&o.tolerance, "tolerance", tracker.DefaultTolerance, "clock-skew tolerance around each flow's times (0: none)")
	f.StringVar(&o.services, "services", "/etc/services", "services `FILE` for {service} (built-in table when missing)")
	f.StringVar(&o.logFile, "log", "", "log `FILE` (default: netdumper/tui.log in the user's cache directory)")
	f.DurationVar(&o.interval, "interval", tracker.DefaultInterval, "scan interval of the embedded tracker (at least 100ms, as serve's)")
	f.StringVar(&o.source, "source", tracker.EventsAuto, "socket events of the embedded tracker besides its scans: auto, ebpf or poll (as serve --source)")
	f.BoolVar(&o.noTracker, "no-tracker", false, "do not run the embedded tracker (no live bindings)")
	return cmd
}

// tuiDir picks the flow directory: --dir, else the current directory,
// else (in netdumper's source tree) the sample directory.
func tuiDir(given string) (dir string, sample bool) {
	if given != "" {
		return given, false
	}
	if fi, err := os.Stat(sampleDir); err != nil || !fi.IsDir() {
		return ".", false
	}
	ents, err := os.ReadDir(".")
	if err != nil {
		return ".", false
	}
	for _, e := range ents {
		if nfdir.IsFlowFile(e.Name()) {
			return ".", false
		}
	}
	return sampleDir, true
}

// openLog opens the TUI's log file: path, or netdumper/tui.log in the
// user's cache directory, or a per-user file in the temporary directory.
func openLog(path string) (*os.File, error) {
	if path == "" {
		if d, err := os.UserCacheDir(); err == nil {
			path = filepath.Join(d, "netdumper", "tui.log")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				path = ""
			}
		}
		if path == "" {
			path = filepath.Join(os.TempDir(), "netdumper-tui-"+strconv.Itoa(os.Getuid())+".log")
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// historySource is an enrich.Source over a tracker's (or store's) history.
type historySource struct {
	name string
	h    tracker.HistorySource
}

func (s historySource) Name() string { return s.name }

func (s historySource) Add(ctx context.Context, ib *tracker.IndexBuilder, from, to time.Time) error {
	return ib.AddHistory(ctx, s.h, from, to)
}

// daemonRunning reports whether a netdumper serve recorded in dir still
// runs.
func daemonRunning(dir string) (tracker.DaemonInfo, bool) {
	info, err := tracker.ReadDaemonInfo(dir)
	if err != nil || info.PID <= 0 {
		return info, false
	}
	return info, syscall.Kill(info.PID, 0) == nil || errors.Is(syscall.Kill(info.PID, 0), syscall.EPERM)
}

// embedded is the embedded tracker and how it was set up.
type embedded struct {
	trk   *tracker.Tracker
	close func() error
	note  string
}

// startEmbedded creates the embedded tracker on the state directory, or
// on a private temporary one when it cannot be locked.
func startEmbedded(o *tuiOptions, log *slog.Logger) (*embedded, error) {
	scanner, closeScanner, err := newSystemScanner(log)
	if err != nil {
		return nil, err
	}
	events, err := tracker.OpenEventSource(tracker.EventSourceOptions{Mode: o.source, Logger: log})
	if err != nil {
		closeScanner()
		return nil, err
	}
	if events != nil {
		prev := closeScanner
		closeScanner = func() error { return errors.Join(events.Close(), prev()) }
	}
	opts := tracker.Options{Scanner: scanner, Events: events, Interval: o.interval, StateDir: o.state, LockTimeout: 300 * time.Millisecond, Logger: log}
	note := ""
	if o.state == "" {
		note = "embedded tracker: temporary history"
	}
	if events == nil && o.source != tracker.EventsPoll {
		note = strings.TrimPrefix(note+"; polling only (eBPF unavailable, see the log)", "; ")
	}
	trk, err := tracker.New(opts)
	if err != nil && opts.StateDir != "" {
		log.Warn("embedded tracker: state directory unusable, using a temporary one", "state", opts.StateDir, "err", err)
		note = fmt.Sprintf("%s is unusable (%v): the embedded tracker keeps a temporary history", opts.StateDir, err)
		opts.StateDir = ""
		trk, err = tracker.New(opts)
	}
	if err != nil {
		closeScanner()
		return nil, err
	}
	return &embedded{trk: trk, note: note, close: func() error {
		err := trk.Close()
		return errors.Join(err, closeScanner())
	}}, nil
}

func runTUI(ctx context.Context, e env, o *tuiOptions) error {
	// The flags first: a bad value is a usage error wherever it runs.
	switch o.source {
	case tracker.EventsAuto, tracker.EventsEBPF, tracker.EventsPoll:
	default:
		return usagef("--source %q: want auto, ebpf or poll", o.source)
	}
	if err := checkInterval("--interval", o.interval); err != nil {
		return err
	}
	if err := checkNotNegative("--tolerance", o.tolerance); err != nil {
		return err
	}
	if err := o.trackers.check(); err != nil {
		return err
	}
	if !isTerminal(e.stdin) || !isTerminal(e.stdout) {
		return usagef("tui needs a terminal (for scripts use show, enrich --dry-run or bindings)")
	}
	// A terminal that goes away (ssh dropped, window closed) ends the TUI
	// as ctrl+c does: a commit in progress is cancelled and removes its
	// temporary file, the embedded tracker closes its history.
	if !signal.Ignored(syscall.SIGHUP) {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGHUP)
		defer stop()
	}
	label, unknown, err := parseTemplates(o.label, o.unknown)
	if err != nil {
		return err
	}
	svc, err := services.Load(o.services)
	if err != nil {
		return err
	}
	dir, sample := tuiDir(o.dir)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("--dir %s: not a directory", dir)
	}
	logf, err := openLog(o.logFile)
	if err != nil {
		return err
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	log.Info("tui starting", "dir", dir, "sample", sample, "pid", os.Getpid())

	var notes []string
	if sample {
		// Work on a copy, so that a commit does not change the source tree.
		tmp, err := os.MkdirTemp("", "netdumper-sample-")
		if err != nil {
			return err
		}
		if err := copyTree(sampleDir, tmp); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("copying the sample flows: %w", err)
		}
		dir = tmp
		notes = append(notes, "sample flows of "+sampleDir+" copied to "+tmp)
		defer fmt.Fprintf(e.stderr, "netdumper: the sample flows, with any labels you committed, are in %s\n"+
			"  nfdump -R %s -o \"fmt:%%line %%uname\"\n", tmp, tmp)
	}
	eo := enrich.Options{Label: label, Unknown: unknown, Services: svc, Overwrite: o.overwrite, Tolerance: enrich.ToleranceOption(o.tolerance)}
	bindings := o.bindings
	if len(bindings) == 0 {
		if p := filepath.Join(dir, sampleBindings); fileExists(p) {
			bindings = []string{p}
			notes = append(notes, "bindings: "+p)
		}
	}
	for _, b := range bindings {
		src, err := loadBindings(b)
		if err != nil {
			return err
		}
		eo.Sources = append(eo.Sources, src)
	}

	live, srcs, runs, lnotes, closeAll, err := liveSources(e, o, log)
	if err != nil {
		return err
	}
	defer closeAll()
	notes = append(notes, lnotes...)
	eo.Sources = append(eo.Sources, srcs...)

	r := lipgloss.NewRenderer(e.stdout)
	r.HasDarkBackground() // ask the terminal now, before the TUI owns it
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := tui.New(ctx, tui.Options{
		Dir: dir, Sources: live, Enrich: eo, Renderer: r, Logger: log,
		Location: location(e), Notes: notes,
	})
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx)
		}()
	}
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithAltScreen(), tea.WithMouseCellMotion(),
		tea.WithInput(e.stdin), tea.WithOutput(e.stdout))
	_, err = p.Run()
	cancel()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	if werr := m.Wait(wctx); werr != nil {
		log.Error("a commit did not stop in time; a temporary file may be left next to it", "err", werr)
	}
	wcancel()
	wg.Wait()
	log.Info("tui stopped", "err", err)
	if errors.Is(err, tea.ErrProgramKilled) && parent.Err() != nil {
		return nil // SIGTERM or SIGINT
	}
	return err
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// copyTree copies the directories and regular files under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, data, 0o644)
	})
}

// liveSources sets up the live bindings sources (see the command's help):
// the sources for the Bindings screen, the enrichment sources of their
// history, the loops to run while the TUI runs, notes for the status line,
// and a function that releases everything.
func liveSources(e env, o *tuiOptions, log *slog.Logger) (live []tui.BindingsSource, srcs []enrich.Source,
	runs []func(context.Context), notes []string, closeAll func(), err error) {
	closeAll = func() {}
	mopts := remote.MirrorOptions{Logger: log}
	if len(o.trackers.trackers) > 0 {
		pool, err := o.trackers.pool(e, log)
		if err != nil {
			return nil, nil, nil, nil, closeAll, err
		}
		for _, m := range pool.Mirrors(mopts) {
			live = append(live, tui.NewMirrorSource(m, ""))
			runs = append(runs, func(ctx context.Context) { m.Run(ctx) })
		}
		return live, []enrich.Source{pool}, runs, nil, closeAll, nil
	}
	if o.state != "" {
		if info, ok := daemonRunning(o.state); ok && info.API != "" {
			c, err := daemonClientFor(e, info, &o.trackers, log)
			if err != nil {
				return nil, nil, nil, nil, closeAll, err
			}
			m := remote.NewMirror(c, mopts)
			live = append(live, tui.NewMirrorSource(m, "serve"))
			runs = append(runs, func(ctx context.Context) { m.Run(ctx) })
			notes = append(notes, fmt.Sprintf("following netdumper serve (pid %d) at %s", info.PID, info.API))
			// The history as enrich reads it: from the serve while it
			// holds the state directory (on whatever API serve.json
			// names then), from the directory itself once it stopped.
			hist := &enrich.LocalStore{Dir: o.state, Fallback: func(ctx context.Context, di tracker.DaemonInfo) (enrich.Source, error) {
				if di.API == info.API && di.TokenFile == info.TokenFile && di.CertFile == info.CertFile {
					return c, nil
				}
				return daemonClientFor(e, di, &o.trackers, log)
			}}
			return live, []enrich.Source{hist}, runs, notes, closeAll, nil
		}
	}
	if o.noTracker {
		if o.state != "" && fileExists(filepath.Join(o.state, tracker.HistoryFile)) {
			srcs = append(srcs, &enrich.LocalStore{Dir: o.state, Fallback: tuiDaemonSource(e, &o.trackers, log)})
		}
		return nil, srcs, nil, nil, closeAll, nil
	}
	emb, err := startEmbedded(o, log)
	if err != nil {
		log.Warn("no embedded tracker", "err", err)
		notes = append(notes, "no live tracker: "+err.Error())
		if o.state != "" && fileExists(filepath.Join(o.state, tracker.HistoryFile)) {
			srcs = append(srcs, &enrich.LocalStore{Dir: o.state, Fallback: tuiDaemonSource(e, &o.trackers, log)})
		}
		return nil, srcs, nil, notes, closeAll, nil
	}
	closeAll = func() { emb.close() }
	if emb.note != "" {
		notes = append(notes, emb.note)
		log.Info(emb.note)
	}
	live = append(live, tui.NewTrackerSource(emb.trk, "local", o.interval))
	srcs = append(srcs, historySource{name: "local tracker", h: emb.trk})
	if emb.trk.StatePath() != filepath.Join(o.state, tracker.HistoryFile) && o.state != "" &&
		fileExists(filepath.Join(o.state, tracker.HistoryFile)) {
		// What a serve recorded (or records) in the state directory.
		srcs = append(srcs, &enrich.LocalStore{Dir: o.state, Fallback: tuiDaemonSource(e, &o.trackers, log)})
	}
	runs = append(runs, func(ctx context.Context) { emb.trk.Run(ctx) })
	return live, srcs, runs, notes, closeAll, nil
}

// tuiDaemonSource is localDaemonSource logging to the TUI's log.
func tuiDaemonSource(e env, tf *trackerFlags, log *slog.Logger) func(context.Context, tracker.DaemonInfo) (enrich.Source, error) {
	return func(_ context.Context, info tracker.DaemonInfo) (enrich.Source, error) {
		return daemonClientFor(e, info, tf, log)
	}
}
