package tui

// The Commit dialog: it shows what will be written (files, label
// template, overwrite policy, and each file's match rate from a dry run),
// then rewrites the files one after the other with the enrichment job
// that `netdumper enrich` runs, with a progress bar. Esc cancels: the job
// stops, and nfcap's atomic replacement leaves the file being written
// untouched (files already done stay done).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/nfcap"
)

// ---- MSG ----

// rateMsg is the dry run of one file, for its match rate.
type rateMsg struct {
	gen        int
	path       string
	sum        enrich.Summary
	err        error
	unreadable bool // err is about the file, not only its bindings
}

// fileUnreadable reports whether the dry run of path failed on the file
// itself (gone, not readable, or not a valid nfdump file) rather than
// only on its bindings (a tracker down).
func fileUnreadable(path string, err error) bool {
	var fe *nfcap.FormatError
	if pe, ok := errors.AsType[*fs.PathError](err); ok && pe.Path == path {
		return true
	}
	_, serr := os.Stat(path)
	return serr != nil || errors.As(err, &fe)
}

// commitProgressMsg reports the rewrite of file i.
type commitProgressMsg struct {
	gen         int
	file        int
	done, total int
}

// commitFileMsg reports that file i is finished.
type commitFileMsg struct {
	gen  int
	file int
	sum  enrich.Summary
	err  error
}

// commitDoneMsg ends a commit run.
type commitDoneMsg struct{ gen int }

// commitClosedMsg tells the root the dialog closed, which files were
// rewritten, and which were found already labelled (left as they were).
type commitClosedMsg struct{ written, unchanged []string }

// ---- MODEL ----

type commitPhase uint8

const (
	phaseConfirm commitPhase = iota
	phaseRunning
	phaseDone
)

type fileOutcome uint8

const (
	outcomePending fileOutcome = iota
	outcomeRunning
	outcomeDone
	outcomeFailed
	outcomeCancelled
	outcomeSkipped
)

type commitFile struct {
	path       string
	rate       *enrich.Summary
	rateErr    error
	unreadable bool // rateErr is about the file, not only its bindings
	outcome    fileOutcome
	sum        enrich.Summary
	err        error
}

type commitDialog struct {
	c     *common
	gen   int
	dir   string // file names are shown relative to it
	files []commitFile
	phase commitPhase

	rateStop context.CancelFunc
	rating   int // index of the file being dry-run, -1 when none

	stop       context.CancelFunc
	ch         chan tea.Msg
	todo       []int // the files being written (the unreadable ones are skipped)
	cur        int   // the file being written
	done       int
	total      int
	cancelling bool
	started    time.Time

	width  int
	height int
}

func newCommitDialog(c *common, gen int, dir string, paths []string) *commitDialog {
	d := &commitDialog{c: c, gen: gen, dir: dir, rating: -1}
	for _, p := range paths {
		f := commitFile{path: p}
		if e := c.cache.fresh(p); e != nil {
			switch {
			case e.summary != nil:
				f.rate = e.summary
			case e.metaKnown && e.err != nil:
				// The listing could not read its header: neither
				// can a dry run, nor a rewrite.
				f.rateErr, f.unreadable = e.err, true
			}
		}
		d.files = append(d.files, f)
	}
	return d
}

func (d *commitDialog) init() tea.Cmd { return d.nextRate() }

func (d *commitDialog) setSize(w, h int) {
	d.width, d.height = w, h
}

// nextRate starts the dry run of the next file without a rate.
func (d *commitDialog) nextRate() tea.Cmd {
	if d.phase != phaseConfirm {
		return nil
	}
	for i := range d.files {
		f := &d.files[i]
		if f.rate != nil || f.rateErr != nil {
			continue
		}
		ctx, stop := context.WithCancel(d.c.ctx)
		d.rateStop, d.rating = stop, i
		gen, path, c := d.gen, f.path, d.c
		return func() tea.Msg {
			defer stop()
			job, err := c.newJob()
			if err != nil {
				return rateMsg{gen: gen, path: path, err: err}
			}
			sum, err := job.DryRun(ctx, path, nil)
			return rateMsg{gen: gen, path: path, sum: sum, err: err, unreadable: err != nil && fileUnreadable(path, err)}
		}
	}
	d.rating = -1
	return nil
}

func (d *commitDialog) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case rateMsg:
		if msg.gen != d.gen {
			return nil
		}
		for i := range d.files {
			if f := &d.files[i]; f.path == msg.path {
				if msg.err != nil {
					f.rateErr, f.unreadable = msg.err, msg.unreadable
				} else {
					s := msg.sum
					f.rate = &s
				}
			}
		}
		return d.nextRate()
	case commitProgressMsg:
		if msg.gen == d.gen {
			d.cur, d.done, d.total = msg.file, msg.done, msg.total
			return d.listen()
		}
	case commitFileMsg:
		if msg.gen != d.gen {
			return nil
		}
		f := &d.files[msg.file]
		f.sum, f.err = msg.sum, msg.err
		switch {
		case msg.err == nil:
			f.outcome = outcomeDone
		case errors.Is(msg.err, context.Canceled):
			f.outcome = outcomeCancelled
		default:
			f.outcome = outcomeFailed
		}
		for i := msg.file + 1; i < len(d.files) && !d.cancelling; i++ {
			if d.files[i].outcome == outcomePending {
				d.files[i].outcome = outcomeRunning
				d.cur, d.done, d.total = i, 0, 0
				break
			}
		}
		return d.listen()
	case commitDoneMsg:
		if msg.gen != d.gen {
			return nil
		}
		d.phase = phaseDone
		d.stop()
		for i := range d.files {
			if o := d.files[i].outcome; o == outcomePending || o == outcomeRunning {
				d.files[i].outcome = outcomeSkipped
			}
		}
		return nil
	case tea.KeyMsg:
		return d.key(msg)
	}
	return nil
}

func (d *commitDialog) key(msg tea.KeyMsg) tea.Cmd {
	k := d.c.keys
	switch d.phase {
	case phaseConfirm:
		switch {
		case key.Matches(msg, k.Confirm):
			if n, _ := d.counts(); n == 0 {
				return d.close() // nothing to write
			}
			return d.start()
		case key.Matches(msg, k.Cancel), msg.String() == "n", msg.String() == "q":
			return d.close()
		}
	case phaseRunning:
		if key.Matches(msg, k.Cancel) {
			d.cancel()
		}
	case phaseDone:
		if key.Matches(msg, k.Cancel) || key.Matches(msg, k.Accept) || msg.String() == "q" {
			return d.close()
		}
	}
	return nil
}

// cancel stops a running commit; the file being written is left as it
// was, files not started are skipped.
func (d *commitDialog) cancel() {
	if d.phase == phaseRunning && !d.cancelling {
		d.cancelling = true
		d.stop()
	}
}

func (d *commitDialog) running() bool { return d.phase == phaseRunning }

// counts returns how many files a commit would write, and how many it
// skips for they are known to be unreadable.
func (d *commitDialog) counts() (write, unreadable int) {
	for i := range d.files {
		if d.files[i].unreadable {
			unreadable++
		} else {
			write++
		}
	}
	return write, unreadable
}

func (d *commitDialog) close() tea.Cmd {
	if d.rateStop != nil {
		d.rateStop()
	}
	var written, unchanged []string
	for _, f := range d.files {
		switch {
		case f.outcome == outcomeDone && f.sum.Written.Unchanged:
			unchanged = append(unchanged, f.path)
		case f.outcome == outcomeDone:
			written = append(written, f.path)
		}
	}
	return func() tea.Msg { return commitClosedMsg{written, unchanged} }
}

// start runs the job over the files, on a goroutine that reports through
// a channel.
func (d *commitDialog) start() tea.Cmd {
	if d.rateStop != nil {
		d.rateStop()
	}
	d.todo = d.todo[:0]
	for i := range d.files {
		if d.files[i].unreadable {
			d.files[i].outcome = outcomeSkipped
		} else {
			d.todo = append(d.todo, i)
		}
	}
	d.phase, d.started = phaseRunning, time.Now()
	ctx, stop := context.WithCancel(d.c.ctx)
	d.stop = stop
	ch := make(chan tea.Msg, 16)
	d.ch = ch
	d.cur = d.todo[0]
	d.files[d.cur].outcome = outcomeRunning
	gen, c := d.gen, d.c
	todo := slices.Clone(d.todo)
	paths := make([]string, len(todo))
	for k, i := range todo {
		paths[k] = d.files[i].path
	}
	// send delivers a message unless the program is gone.
	send := func(m tea.Msg) {
		select {
		case ch <- m:
		case <-c.ctx.Done():
		}
	}
	run := func() tea.Msg {
		defer send(commitDoneMsg{gen})
		c.writers.Add(1)
		defer c.writers.Done()
		job, jerr := c.newJob()
		for k, p := range paths {
			i := todo[k]
			err := jerr
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				send(commitFileMsg{gen: gen, file: i, err: err})
				if errors.Is(err, context.Canceled) {
					return nil
				}
				continue
			}
			sum, rerr := job.Run(ctx, p, func(done, total int) {
				select {
				case ch <- commitProgressMsg{gen: gen, file: i, done: done, total: total}:
				default: // the screen is behind: skip this step
				}
			})
			if rerr != nil {
				c.log.Warn("commit", "file", p, "err", rerr)
			}
			send(commitFileMsg{gen: gen, file: i, sum: sum, err: rerr})
			if rerr != nil && ctx.Err() != nil {
				return nil
			}
		}
		return nil
	}
	return tea.Batch(run, d.listen())
}

func (d *commitDialog) listen() tea.Cmd {
	ch, ctx := d.ch, d.c.ctx
	return func() tea.Msg {
		select {
		case m := <-ch:
			return m
		case <-ctx.Done():
			return nil
		}
	}
}

// ---- VIEW ----

func (d *commitDialog) view() string {
	st := d.c.st
	var b strings.Builder
	inner := d.inner()
	title := "Commit labels"
	switch d.phase {
	case phaseRunning:
		title = "Writing labels"
		if d.cancelling {
			title = "Cancelling…"
		}
	case phaseDone:
		title = "Done"
	}
	b.WriteString(st.DialogTitle.Render(title))
	b.WriteString("\n\n")
	for _, l := range d.c.policy() {
		b.WriteString(cut(l, inner))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	maxFiles := max(1, d.height-14)
	for i := range d.files {
		if i == maxFiles && len(d.files) > maxFiles+1 {
			fmt.Fprintf(&b, "… and %s\n", count(len(d.files)-i, "more file", "more files"))
			break
		}
		for _, l := range strings.Split(d.fileLine(&d.files[i]), "\n") {
			b.WriteString(padLine(l, inner))
			b.WriteByte('\n')
		}
	}
	b.WriteByte('\n')
	switch d.phase {
	case phaseConfirm:
		n, bad := d.counts()
		switch {
		case n == 0 && bad == 1:
			b.WriteString("Nothing to rewrite: the file is unreadable.  ")
		case n == 0:
			fmt.Fprintf(&b, "Nothing to rewrite: all %d files are unreadable.  ", bad)
		case bad > 0:
			fmt.Fprintf(&b, "Rewrite %s in place (atomically), skipping %s?  ",
				count(n, "file", "files"), count(bad, "unreadable one", "unreadable ones"))
		default:
			fmt.Fprintf(&b, "Rewrite %s in place (atomically)?  ", count(n, "file", "files"))
		}
		if n == 0 {
			b.WriteString(st.key.render("enter/esc") + " close")
			break
		}
		b.WriteString(st.key.render("enter/y") + " write · " + st.key.render("esc/n") + " cancel")
	case phaseRunning:
		pos, n := max(0, slices.Index(d.todo, d.cur)), len(d.todo)
		part := 0.0
		if d.total > 0 {
			part = float64(d.done) / float64(d.total)
		}
		frac := (float64(pos) + part) / float64(n)
		b.WriteString(d.progressBar(frac, max(10, min(60, inner-6))))
		fmt.Fprintf(&b, " %3.0f%%\n", 100*frac)
		fmt.Fprintf(&b, "file %d of %d, block %d of %d · ", pos+1, n, d.done, d.total)
		b.WriteString(st.key.render("esc") + " cancel (the file being written is left untouched)")
	case phaseDone:
		ok, same, failed, bad := 0, 0, 0, 0
		for _, f := range d.files {
			switch {
			case f.outcome == outcomeSkipped && f.unreadable:
				bad++
			case f.outcome == outcomeDone && f.sum.Written.Unchanged:
				same++
			case f.outcome == outcomeDone:
				ok++
			case f.outcome == outcomeFailed:
				failed++
			}
		}
		fmt.Fprintf(&b, "%d written, ", ok)
		if same > 0 {
			fmt.Fprintf(&b, "%d already labelled, ", same)
		}
		fmt.Fprintf(&b, "%d failed, %d not written", failed, len(d.files)-ok-same-failed-bad)
		if bad > 0 {
			fmt.Fprintf(&b, ", %d unreadable skipped", bad)
		}
		b.WriteString(" · ")
		b.WriteString(st.key.render("enter/esc") + " close")
	}
	box := st.Dialog.Width(inner + 2).Render(b.String())
	return lipgloss.Place(d.width, d.height, lipgloss.Center, lipgloss.Center, box)
}

func (d *commitDialog) fileLine(f *commitFile) string {
	st := d.c.st
	name := f.path
	if rel, err := filepath.Rel(d.dir, f.path); err == nil && !strings.HasPrefix(rel, "..") {
		name = rel
	}
	var state string
	switch f.outcome {
	case outcomeRunning:
		state = st.warn.render("writing…")
	case outcomeDone:
		w := f.sum.Written
		if w.Unchanged {
			state = st.ok.render("✓ already labelled") + fmt.Sprintf(" (file left as it was; %d kept, %d without)", w.Kept, w.Unlabelled)
			break
		}
		state = st.ok.render("✓ "+count(w.Labelled(), "label written", "labels written")) +
			fmt.Sprintf(" (%d kept, %d without)", w.Kept, w.Unlabelled+w.Placeholder)
	case outcomeFailed:
		state = st.bad.render("✗ failed") + " (file untouched)\n      " + st.bad.render(d.errLine(f, f.err))
	case outcomeCancelled:
		state = st.warn.render("✗ cancelled") + " (file untouched)"
	case outcomeSkipped:
		state = st.dim.render("not written")
		if f.unreadable {
			state = st.bad.render("✗ unreadable") + " (skipped)\n      " + st.bad.render(d.errLine(f, f.rateErr))
		}
	default:
		switch {
		case f.rateErr != nil:
			what := "✗ no match rate"
			if f.unreadable {
				what = "✗ unreadable"
			}
			state = st.bad.render(what) + "\n      " + st.bad.render(d.errLine(f, f.rateErr))
		case f.rate != nil:
			state = fmt.Sprintf("%d of %s matched (%.1f%%)", f.rate.Matched(), count(f.rate.Flows, "record", "records"), 100*f.rate.MatchRate())
		default:
			state = st.dim.render("match rate …")
		}
	}
	return fmt.Sprintf("  %-30s %s", name, state)
}

// inner is the width of the dialog's text.
func (d *commitDialog) inner() int { return max(20, min(d.width-6, 100)) }

// errLine is the error of file f for the line under its name: without
// its path, which starts most errors and would leave no room for the
// reason.
func (d *commitDialog) errLine(f *commitFile, err error) string {
	return cut(errDetail(err, f.path), d.inner()-6)
}

// progressBar draws a bar w cells wide, frac full.
func (d *commitDialog) progressBar(frac float64, w int) string {
	full := int(frac*float64(w) + 0.5)
	full = max(0, min(full, w))
	return d.c.st.Bar.Render(strings.Repeat("█", full)) + d.c.st.dim.render(strings.Repeat("░", w-full))
}
