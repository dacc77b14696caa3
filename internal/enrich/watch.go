package enrich

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/netdumper/netdumper/internal/nfdir"
	"github.com/netdumper/netdumper/nfcap"
)

// DoneLog remembers which files were enriched, so a watcher restarted later
// does not enrich them twice. It is an append-only text file (one line per
// file: absolute path, size and modification time after the rewrite) in the
// state directory; entries for files that no longer exist are dropped when
// it is loaded and when it is pruned (hourly, by Watch).
//
// Paths are made absolute and clean, so that one file is one entry however
// the watched directory was spelled. Logs of older versions may hold
// relative paths: those that name an existing file from the current
// directory are made absolute; the others are kept as they are and match a
// file whose path ends with them and whose size and modification time are
// the recorded ones.
type DoneLog struct {
	path   string
	mu     sync.Mutex
	done   map[string]doneEntry
	legacy map[string][]legacyEntry // relative entries by base name
	f      *os.File
}

type doneEntry struct {
	size  int64
	mtime int64
}

// legacyEntry is a relative path of an old log that could not be resolved.
type legacyEntry struct {
	rel string // clean, relative
	doneEntry
}

// OpenDoneLog loads (or creates) the log at path.
func OpenDoneLog(path string) (*DoneLog, error) {
	l := &DoneLog{path: path, done: make(map[string]doneEntry), legacy: make(map[string][]legacyEntry)}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("done log: %w", err)
	}
	rel := map[string]doneEntry{}
	if data, err := os.ReadFile(path); err == nil {
		// A crash in the middle of an append leaves a last line without
		// its newline: that entry was never recorded.
		data = data[:bytes.LastIndexByte(data, '\n')+1]
		sc := bufio.NewScanner(bytes.NewReader(data))
		line := 0
		for sc.Scan() {
			line++
			parts := strings.Split(sc.Text(), "\t")
			if len(parts) != 3 {
				return nil, fmt.Errorf("%s:%d: malformed entry (want path, size, mtime)", path, line)
			}
			size, err1 := strconv.ParseInt(parts[1], 10, 64)
			mt, err2 := strconv.ParseInt(parts[2], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s:%d: malformed size or mtime", path, line)
			}
			if filepath.IsAbs(parts[0]) {
				l.done[filepath.Clean(parts[0])] = doneEntry{size, mt}
			} else {
				rel[filepath.Clean(parts[0])] = doneEntry{size, mt}
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("done log: %w", err)
	}
	// Drop the files that are gone; resolve old relative entries where the
	// current directory still leads to their file.
	for p := range l.done {
		if _, err := os.Stat(p); err != nil {
			delete(l.done, p)
		}
	}
	byBase := make(map[string][]string, len(l.done))
	for p := range l.done {
		byBase[filepath.Base(p)] = append(byBase[filepath.Base(p)], p)
	}
relative:
	for p, e := range rel {
		for _, abs := range byBase[filepath.Base(p)] {
			if l.done[abs] == e && strings.HasSuffix(abs, string(filepath.Separator)+p) {
				continue relative // recorded again with its absolute path
			}
		}
		if abs, err := filepath.Abs(p); err == nil {
			if _, err := os.Stat(abs); err == nil {
				if _, ok := l.done[abs]; !ok {
					l.done[abs] = e
				}
				continue
			}
		}
		base := filepath.Base(p)
		l.legacy[base] = append(l.legacy[base], legacyEntry{p, e})
	}
	// Rewrite the log with what is left, then append to it.
	if err := l.rewrite(); err != nil {
		return nil, err
	}
	return l, nil
}

// rewrite replaces the log file with the entries in memory and reopens it
// for appending; l.mu is held (or l not yet shared).
func (l *DoneLog) rewrite() error {
	tmp := l.path + ".tmp"
	var b strings.Builder
	for p, e := range l.done {
		fmt.Fprintf(&b, "%s\t%d\t%d\n", p, e.size, e.mtime)
	}
	for _, es := range l.legacy {
		for _, e := range es {
			fmt.Fprintf(&b, "%s\t%d\t%d\n", e.rel, e.size, e.mtime)
		}
	}
	// Synced before the rename and the directory after it: a crash must
	// leave the old log or the new one, never an empty file (which would
	// have every file of --since enriched again).
	if err := writeSynced(tmp, b.String()); err != nil {
		return fmt.Errorf("done log: %w", err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fmt.Errorf("done log: %w", err)
	}
	if d, err := os.Open(filepath.Dir(l.path)); err == nil {
		d.Sync() // best effort: the appends that follow are not synced either
		d.Close()
	}
	f, err := os.OpenFile(l.path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("done log: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f = f
	return nil
}

// Prune forgets the files that no longer exist (nfexpire removed them) and
// rewrites the log without them, so that a watcher running for months
// holds and writes only the files still there. It returns how many were
// dropped.
func (l *DoneLog) Prune() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for p := range l.done {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			delete(l.done, p)
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	return n, l.rewrite()
}

// writeSynced writes s to a new file at path and syncs it.
func writeSynced(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// absPath is path absolute and clean (as it is when Abs fails).
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}

// Done reports whether path was enriched and has not changed since.
func (l *DoneLog) Done(path string, fi fs.FileInfo) bool {
	path = absPath(path)
	want := doneEntry{fi.Size(), fi.ModTime().UnixNano()}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.done[path]; ok {
		return e == want
	}
	// An old relative entry: the same file if path ends with it and its
	// size and time are the recorded ones. It is recorded again as path.
	base := filepath.Base(path)
	for i, e := range l.legacy[base] {
		if e.doneEntry == want && strings.HasSuffix(path, string(filepath.Separator)+e.rel) {
			l.legacy[base] = slices.Delete(l.legacy[base], i, i+1)
			_ = l.record(path, want) // if this fails, the old entry still says it next time
			return true
		}
	}
	return false
}

// Mark records path as enriched, as it is now on disk.
func (l *DoneLog) Mark(path string) error {
	path = absPath(path)
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.record(path, doneEntry{fi.Size(), fi.ModTime().UnixNano()})
}

// record adds an entry for the absolute path; l.mu is held.
func (l *DoneLog) record(path string, e doneEntry) error {
	l.done[path] = e
	if n, err := fmt.Fprintf(l.f, "%s\t%d\t%d\n", path, e.size, e.mtime); err != nil {
		// Take back what a failed write left (a full disk): the next
		// entry would be appended to the partial line, spoiling both.
		if n > 0 {
			if fi, serr := l.f.Stat(); serr == nil {
				_ = l.f.Truncate(fi.Size() - int64(n))
			}
		}
		return fmt.Errorf("done log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("done log: %w", err)
	}
	return nil
}

// Close closes the log file.
func (l *DoneLog) Close() error { return l.f.Close() }

// WatchOptions configure Watch.
type WatchOptions struct {
	// Dir is the directory nfcapd rotates files into (searched recursively).
	Dir string
	// Delay is how long a rotated file waits before it is enriched, so
	// that bindings from the end of its interval reach the sources.
	Delay time.Duration
	// Since limits the files taken to those modified in the last Since
	// before start-up (older ones predate the trackers' retention), at
	// start-up and in every later search; 0: all. A file modified later
	// is taken.
	Since time.Duration
	// Poll is how often the directory is searched again even without
	// file-system events (default 10 s).
	Poll time.Duration
	// MaxBackoff bounds the retry delay of a failing file (default 10 min).
	MaxBackoff time.Duration
	// Done remembers the files already enriched.
	Done *DoneLog
	// Report is called after each attempt.
	Report func(Summary, error)
	Logger *slog.Logger
	// now is the clock (tests).
	now func() time.Time
}

type pending struct {
	due      time.Time
	attempts int
	// parked is set when the file failed for its content: it is tried
	// again only when its size or modification time (as then) changes.
	parked bool
	size   int64
	mtime  time.Time
}

// contentError reports whether err is about what the file holds (not an
// nfdump file, damaged, unsupported): trying again cannot help until the
// file changes.
func contentError(err error) bool {
	for _, e := range []error{nfcap.ErrBadMagic, nfcap.ErrLegacyLayout, nfcap.ErrUnsupportedLayout, nfcap.ErrEncrypted,
		nfcap.ErrUnsupportedCompression, nfcap.ErrTruncated, nfcap.ErrCorrupt, nfcap.ErrTooLarge, nfcap.ErrDecompress} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Watch enriches every rotated nfcapd file under opts.Dir once, until ctx
// ends. A file is taken when it has not been modified for opts.Delay. A
// file that is not a readable nfdump file (damaged, unsupported) is
// reported once and taken again only when it changes; any other failure
// (a tracker unreachable, say) is retried with exponential backoff and
// reported each time. The original is never half-written (the rewrite is
// atomic). On cancellation the file in progress is abandoned cleanly and
// Watch returns nil.
func (j *Job) Watch(ctx context.Context, opts WatchOptions) error {
	if opts.Poll <= 0 {
		opts.Poll = 10 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Minute
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = j.log
	}
	if opts.Done == nil {
		return errors.New("watch: no done log")
	}
	// Files are known by absolute paths (the done log's keys), whatever
	// the spelling of Dir.
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return fmt.Errorf("watch %s: %w", opts.Dir, err)
	}
	opts.Dir = dir
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", opts.Dir, err)
	}
	defer fw.Close()
	watched := map[string]bool{}
	addDirs := func() {
		// Forget the directories removed since (nfexpire's old days): a
		// new one of the same name is watched again, and the cleaning of
		// temporary files does not warn about each one for ever.
		for p := range watched {
			if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
				delete(watched, p)
			}
		}
		filepath.WalkDir(opts.Dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && !watched[p] {
				if fw.Add(p) == nil {
					watched[p] = true
				}
			}
			return nil
		})
	}
	addDirs()
	cleanTemps := func() { RemoveStaleTemps(log, slices.Sorted(maps.Keys(watched))...) }
	cleanTemps()
	cleaned := opts.now()
	start := opts.now()
	queue := map[string]*pending{}
	scan := func() {
		nfdir.Walk(ctx, []string{opts.Dir}, func(f nfdir.File) error {
			if _, ok := queue[f.Path]; ok {
				return nil
			}
			fi, err := os.Stat(f.Path)
			if err != nil || opts.Done.Done(f.Path, fi) {
				return nil
			}
			// Not only at start: every later search (each poll and event)
			// would otherwise take the old files within seconds.
			if opts.Since > 0 && fi.ModTime().Before(start.Add(-opts.Since)) {
				return nil
			}
			queue[f.Path] = &pending{due: fi.ModTime().Add(opts.Delay)}
			return nil
		})
	}
	scan()
	poll := time.NewTicker(opts.Poll)
	defer poll.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		// Run every file that is due, oldest first (lexical order is
		// time order for nfcapd's names).
		now := opts.now()
		next := now.Add(opts.Poll)
		for _, p := range sortedKeys(queue) {
			if ctx.Err() != nil {
				return nil
			}
			pe := queue[p]
			fi, err := os.Stat(p)
			if err != nil {
				delete(queue, p)
				continue
			}
			if pe.parked {
				if fi.Size() == pe.size && fi.ModTime().Equal(pe.mtime) {
					continue
				}
				*pe = pending{due: fi.ModTime().Add(opts.Delay)} // replaced or rewritten: a new file
			}
			if due := fi.ModTime().Add(opts.Delay); due.After(pe.due) {
				pe.due = due // still being written or touched
			}
			if pe.due.After(now) {
				if pe.due.Before(next) {
					next = pe.due
				}
				continue
			}
			sum, err := j.Run(ctx, p, nil)
			if ctx.Err() != nil {
				log.Info("watch stopped; file left as it was", "file", p)
				return nil
			}
			if opts.Report != nil {
				opts.Report(sum, err)
			}
			if err != nil && contentError(err) {
				pe.parked, pe.size, pe.mtime = true, fi.Size(), fi.ModTime()
				log.Warn("enrich failed; the file is left as it is and tried again only if it changes", "file", p, "err", err)
				continue
			}
			if err != nil {
				pe.attempts++
				backoff := min(opts.MaxBackoff, opts.Delay+time.Duration(1<<min(pe.attempts, 20))*time.Second)
				pe.due = opts.now().Add(backoff)
				if pe.due.Before(next) { // wake up for the retry, not at the next poll
					next = pe.due
				}
				log.Warn("enrich failed; will retry", "file", p, "attempt", pe.attempts, "retry_in", backoff, "err", err)
				continue
			}
			if err := opts.Done.Mark(p); err != nil {
				log.Warn("could not record the file as done", "file", p, "err", err)
			}
			delete(queue, p)
		}
		timer.Reset(max(time.Until(next), 10*time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if ev.Op&fsnotify.Create != 0 {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					addDirs()
				}
			}
			scan()
		case err := <-fw.Errors:
			log.Warn("file-system events", "dir", opts.Dir, "err", err)
		case <-poll.C:
			addDirs()
			scan()
			if opts.now().Sub(cleaned) >= StaleTempAge {
				cleanTemps()
				if n, err := opts.Done.Prune(); err != nil {
					log.Warn("could not drop removed files from the done log", "err", err)
				} else if n > 0 {
					log.Debug("done log: dropped removed files", "files", n)
				}
				cleaned = opts.now()
			}
		case <-timer.C:
		}
	}
}

func sortedKeys(m map[string]*pending) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// StaleTempAge is how long a rewrite's temporary file must have gone
// unmodified before it counts as left behind by a killed process: a live
// rewrite writes to it continuously.
const StaleTempAge = time.Hour

// RemoveStaleTemps removes the temporary files interrupted rewrites left
// in dirs (see nfcap.RemoveStaleTemps), logging each one, and each
// directory it could not clean.
func RemoveStaleTemps(log *slog.Logger, dirs ...string) {
	for _, d := range dirs {
		removed, err := nfcap.RemoveStaleTemps(d, StaleTempAge)
		for _, p := range removed {
			log.Warn("removed a temporary file left by an interrupted rewrite", "file", p)
		}
		if err != nil {
			log.Warn("could not remove temporary files left by an interrupted rewrite", "dir", d, "err", err)
		}
	}
}
