package enrich

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
	"github.com/netdumper/netdumper/tracker"
)

// TestWatch runs the watcher on a directory while files "rotate" into it:
// each valid file is enriched once (also across a restart), nfcapd's open
// file is never touched, and a corrupt file is reported and left as is.
func TestWatch(t *testing.T) {
	fx := fixtures.Dir(t)
	job := truthJob(t)
	dir := t.TempDir()
	state := filepath.Join(t.TempDir(), "enriched.log")
	var mu sync.Mutex
	reports := map[string][]error{}
	run := func(ctx context.Context) (*DoneLog, chan error) {
		done, err := OpenDoneLog(state)
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan error, 1)
		go func() {
			ch <- job.Watch(ctx, WatchOptions{Dir: dir, Delay: 150 * time.Millisecond, Poll: 50 * time.Millisecond, Done: done,
				Report: func(s Summary, err error) {
					mu.Lock()
					reports[filepath.Base(s.Path)] = append(reports[filepath.Base(s.Path)], err)
					mu.Unlock()
				}})
		}()
		return done, ch
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, stopped := run(ctx)

	sub := filepath.Join(dir, "2023", "11", "14")
	os.MkdirAll(sub, 0o755)
	current := filepath.Join(sub, "nfcapd.current.4242")
	copyFile(t, filepath.Join(fx, "v9-mixed.none.nf"), current)
	good := filepath.Join(sub, "nfcapd.202311142210")
	copyFile(t, filepath.Join(fx, "v9-mixed.none.nf"), good)
	bad := filepath.Join(sub, "nfcapd.202311142215")
	os.WriteFile(bad, []byte("not a flow file at all"), 0o644)

	waitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reports["nfcapd.202311142210"]) > 0 && len(reports["nfcapd.202311142215"]) > 0
	})
	cancel()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	done.Close()
	mu.Lock()
	if errs := reports["nfcapd.202311142210"]; len(errs) != 1 || errs[0] != nil {
		t.Fatalf("good file reports %v", errs)
	}
	if errs := reports["nfcapd.202311142215"]; errs[0] == nil {
		t.Fatalf("corrupt file reported no error")
	}
	mu.Unlock()
	// Every TCP/UDP flow matches; ICMP flows keep what they had.
	want := 0
	r, _ := nfcap.OpenFile(filepath.Join(fx, "v9-mixed.none.nf"), nfcap.ReaderOptions{})
	for f := range r.Flows() {
		if !f.IsICMP() || f.Username != "" {
			want++
		}
	}
	r.Close()
	if n := usernames(t, good); n != want {
		t.Errorf("%d flows with a username after watch, want %d", n, want)
	}
	orig, _ := os.ReadFile(filepath.Join(fx, "v9-mixed.none.nf"))
	if cur, _ := os.ReadFile(current); !bytes.Equal(cur, orig) {
		t.Error("nfcapd.current file was modified")
	}
	if b, _ := os.ReadFile(bad); string(b) != "not a flow file at all" {
		t.Error("corrupt file was modified")
	}

	// A restarted watcher must not enrich the good file again.
	before, _ := os.Stat(good)
	ctx, cancel = context.WithCancel(context.Background())
	done, stopped = run(ctx)
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-stopped
	done.Close()
	after, _ := os.Stat(good)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("file enriched again after a restart")
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(reports["nfcapd.202311142210"]); n != 1 {
		t.Errorf("good file attempted %d times", n)
	}
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// usernames counts the flows of path that carry a username.
func usernames(t *testing.T, path string) int {
	t.Helper()
	n := 0
	for _, u := range flowUsernames(t, path) {
		if u != "" {
			n++
		}
	}
	return n
}

func TestDoneLogMalformed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "enriched.log")
	os.WriteFile(p, []byte("/x\t1\n"), 0o644)
	if _, err := OpenDoneLog(p); err == nil || !bytes.Contains([]byte(err.Error()), []byte(":1: malformed")) {
		t.Fatalf("err %v", err)
	}
}

// TestDoneLogPrune: the files nfexpire removed leave the log (in memory
// and on disk) when it is pruned; the others stay done, and entries
// appended afterwards go to the rewritten file.
func TestDoneLogPrune(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "enriched.log")
	l, err := OpenDoneLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var files []string
	for _, name := range []string{"nfcapd.202311142210", "nfcapd.202311142215", "nfcapd.202311142220"} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := l.Mark(f); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	os.Remove(files[0])
	if n, err := l.Prune(); n != 1 || err != nil {
		t.Fatalf("Prune = %d, %v; want 1 file dropped", n, err)
	}
	if n, err := l.Prune(); n != 0 || err != nil {
		t.Fatalf("second Prune = %d, %v; want 0", n, err)
	}
	late := filepath.Join(dir, "nfcapd.202311142225")
	os.WriteFile(late, []byte("late"), 0o644)
	if err := l.Mark(late); err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files[1:], late) {
		fi, _ := os.Stat(f)
		if !l.Done(f, fi) {
			t.Errorf("%s: not done after the prune", f)
		}
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(data), "\n"); got != 3 || strings.Contains(string(data), filepath.Base(files[0])) {
		t.Errorf("log file after the prune and one more entry:\n%s\nwant the 3 files that exist", data)
	}
}

// startWatch runs job.Watch on dir with the done log at logPath until the
// returned stop is called; reports counts the attempts per file base name.
func startWatch(t *testing.T, job *Job, dir, logPath string, opts WatchOptions) (stop func(), reports func(string) int) {
	t.Helper()
	done, err := OpenDoneLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	opts.Dir, opts.Done = dir, done
	opts.Report = func(s Summary, err error) {
		mu.Lock()
		seen[filepath.Base(s.Path)]++
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- job.Watch(ctx, opts) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-ch; err != nil {
			t.Errorf("watch: %v", err)
		}
		done.Close()
	}
	t.Cleanup(stop)
	return stop, func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[name]
	}
}

// TestWatchSince: a file last modified before the --since window at
// start-up is not taken, neither by the first search nor by the later
// polls; one modified since is, and 0 takes every file.
func TestWatchSince(t *testing.T) {
	fx := fixtures.Dir(t)
	for _, tc := range []struct {
		name    string
		since   time.Duration
		touch   bool // modify the old file while the watcher runs
		wantOld int
	}{
		{name: "old file skipped", since: time.Hour, wantOld: 0},
		{name: "old file modified later", since: time.Hour, touch: true, wantOld: 1},
		{name: "since 0 takes all", since: 0, wantOld: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := truthJob(t)
			dir := t.TempDir()
			oldFile := filepath.Join(dir, "nfcapd.202311142210")
			newFile := filepath.Join(dir, "nfcapd.202311142215")
			copyFile(t, filepath.Join(fx, "v9-mixed.none.nf"), oldFile)
			copyFile(t, filepath.Join(fx, "v9-mixed.none.nf"), newFile)
			old := time.Now().Add(-2 * time.Hour)
			if err := os.Chtimes(oldFile, old, old); err != nil {
				t.Fatal(err)
			}
			stop, reports := startWatch(t, job, dir, filepath.Join(t.TempDir(), "enriched.log"),
				WatchOptions{Since: tc.since, Poll: 20 * time.Millisecond})
			waitFor(t, 10*time.Second, func() bool { return reports("nfcapd.202311142215") > 0 })
			if tc.touch {
				now := time.Now()
				if err := os.Chtimes(oldFile, now, now); err != nil {
					t.Fatal(err)
				}
			}
			if tc.wantOld > 0 {
				waitFor(t, 10*time.Second, func() bool { return reports("nfcapd.202311142210") > 0 })
			} else {
				time.Sleep(300 * time.Millisecond) // 15 polls
			}
			stop()
			if n := reports("nfcapd.202311142210"); n != tc.wantOld {
				t.Errorf("file modified 2h before start, --since %v: taken %d times, want %d", tc.since, n, tc.wantOld)
			}
		})
	}
}

// TestWatchSameFileAnySpelling: the done log knows files by absolute path,
// so a watcher restarted with the directory spelled differently (relative,
// absolute, with dots) does not enrich the same file again.
func TestWatchSameFileAnySpelling(t *testing.T) {
	fx := fixtures.Dir(t)
	job := truthJob(t)
	base := t.TempDir()
	t.Chdir(base)
	os.Mkdir("w1", 0o755)
	file := filepath.Join(base, "w1", "nfcapd.202311142210")
	copyFile(t, filepath.Join(fx, "v9-mixed.none.nf"), file)
	logPath := filepath.Join(t.TempDir(), "enriched.log")
	opts := WatchOptions{Poll: 20 * time.Millisecond}

	stop, reports := startWatch(t, job, "w1", logPath, opts)
	waitFor(t, 10*time.Second, func() bool { return reports("nfcapd.202311142210") > 0 })
	stop()
	before, _ := os.Stat(file)
	for _, spelling := range []string{filepath.Join(base, "w1"), "./w1/", filepath.Join(base, "w1", "..", "w1"), "w1"} {
		stop, reports := startWatch(t, job, spelling, logPath, opts)
		time.Sleep(300 * time.Millisecond) // 15 polls
		stop()
		if n := reports("nfcapd.202311142210"); n != 0 {
			t.Errorf("--watch %s: enriched again (%d attempts)", spelling, n)
		}
	}
	if after, _ := os.Stat(file); !after.ModTime().Equal(before.ModTime()) {
		t.Error("file rewritten again")
	}
	b, _ := os.ReadFile(logPath)
	for line := range strings.Lines(string(b)) {
		if !filepath.IsAbs(strings.Split(line, "\t")[0]) {
			t.Errorf("log entry %q is not absolute", line)
		}
	}
}

// TestDoneLogOldRelativeEntries: a log written by an older version holds
// paths as they were spelled. Such entries still mark their file as done:
// resolved from the current directory when that leads to it, else matched
// by path suffix, size and modification time.
func TestDoneLogOldRelativeEntries(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "w1", "2023", "nfcapd.202311142210")
	os.MkdirAll(filepath.Dir(file), 0o755)
	os.WriteFile(file, []byte("enriched"), 0o644)
	fi, _ := os.Stat(file)
	mtime := fi.ModTime().UnixNano()
	for _, tc := range []struct {
		name  string
		cwd   string // relative to base
		entry string
		size  int64
		want  bool
	}{
		{"from the same directory", ".", "w1/2023/nfcapd.202311142210", fi.Size(), true},
		{"with dots", ".", "./w1/2023/../2023/nfcapd.202311142210", fi.Size(), true},
		{"from elsewhere", "w1/2023", "w1/2023/nfcapd.202311142210", fi.Size(), true},
		{"from elsewhere, shorter", "w1", "2023/nfcapd.202311142210", fi.Size(), true},
		{"changed since", "w1", "w1/2023/nfcapd.202311142210", fi.Size() + 1, false},
		{"another directory's file", "w1", "w2/2023/nfcapd.202311142210", fi.Size(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(filepath.Join(base, tc.cwd))
			logPath := filepath.Join(t.TempDir(), "enriched.log")
			os.WriteFile(logPath, []byte(fmt.Sprintf("%s\t%d\t%d\n", tc.entry, tc.size, mtime)), 0o644)
			for round := range 2 { // and again once the log was rewritten
				l, err := OpenDoneLog(logPath)
				if err != nil {
					t.Fatal(err)
				}
				got := l.Done(file, fi)
				l.Close()
				if got != tc.want {
					t.Fatalf("round %d: Done = %v, want %v", round+1, got, tc.want)
				}
			}
			if b, _ := os.ReadFile(logPath); tc.want && string(b) != fmt.Sprintf("%s\t%d\t%d\n", file, fi.Size(), mtime) {
				t.Errorf("log not migrated to the absolute path:\n%s", b)
			}
		})
	}
}

// TestWatchRetriesOnTime: a failed file is retried when its backoff ends,
// not at the next poll of the directory.
func TestWatchRetriesOnTime(t *testing.T) {
	job, err := NewJob(Options{Sources: []Source{downSource{}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyFile(t, filepath.Join(fixtures.Dir(t), "v9-mixed.lz4.nf"), filepath.Join(dir, "nfcapd.202311142215"))
	const backoff = 200 * time.Millisecond
	var mu sync.Mutex
	var attempts []time.Time
	done, err := OpenDoneLog(filepath.Join(t.TempDir(), "enriched.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer done.Close()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() {
		stopped <- job.Watch(ctx, WatchOptions{Dir: dir, Poll: time.Minute, MaxBackoff: backoff, Done: done,
			Report: func(s Summary, err error) {
				mu.Lock()
				attempts = append(attempts, time.Now())
				mu.Unlock()
			}})
	}()
	defer func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) >= 3
	})
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < 3; i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap < backoff || gap > backoff+time.Second {
			t.Errorf("attempt %d came %v after the previous one, want about %v", i+1, gap, backoff)
		}
	}
}

// downSource is a tracker that never answers.
type downSource struct{}

func (downSource) Name() string { return "https://down.example:7701" }
func (downSource) Add(context.Context, *tracker.IndexBuilder, time.Time, time.Time) error {
	return errors.New("tracker unreachable")
}

// TestWatchParksDamagedFile: a file that is not a valid nfdump file fails
// once and is not tried again (its retry time passes), until it changes:
// then it is enriched like any other.
func TestWatchParksDamagedFile(t *testing.T) {
	job := truthJob(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "nfcapd.202311142215")
	good, err := os.ReadFile(filepath.Join(fixtures.Dir(t), "v9-mixed.lz4.nf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, good[:3000], 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var errs []error
	done, err := OpenDoneLog(filepath.Join(t.TempDir(), "enriched.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer done.Close()
	var logged bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() {
		stopped <- job.Watch(ctx, WatchOptions{Dir: dir, Poll: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Done: done,
			Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logged, mu: &mu}, nil)),
			Report: func(s Summary, err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}})
	}()
	defer func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Error(err)
		}
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(errs)
	}
	waitFor(t, 5*time.Second, func() bool { return count() >= 1 })
	time.Sleep(500 * time.Millisecond) // ten retry times and polls
	mu.Lock()
	if len(errs) != 1 || !errors.Is(errs[0], nfcap.ErrTruncated) && !errors.Is(errs[0], nfcap.ErrCorrupt) {
		t.Errorf("attempts: %v, want one, failing for the file's content", errs)
	}
	if !strings.Contains(logged.String(), "tried again only if it changes") {
		t.Errorf("log:\n%s", logged.String())
	}
	mu.Unlock()
	// The complete file arrives under the same name.
	tmp := filepath.Join(dir, ".incoming")
	if err := os.WriteFile(tmp, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(errs) == 2 && errs[1] == nil
	})
}

// lockedWriter serialises writes to w with mu.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestWatchRemovesStaleTemps: a watcher starting up removes the temporary
// files that rewrites killed earlier left in its directories, and keeps
// one that is still being written.
func TestWatchRemovesStaleTemps(t *testing.T) {
	job := truthJob(t)
	dir := t.TempDir()
	sub := filepath.Join(dir, "2023", "11", "14")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(sub, ".nfcapd.202311142210.netdumper-1.tmp")
	live := filepath.Join(dir, ".nfcapd.202311142215.netdumper-2.tmp")
	for _, p := range []string{stale, live} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * StaleTempAge)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	stop, _ := startWatch(t, job, dir, filepath.Join(t.TempDir(), "enriched.log"), WatchOptions{Poll: 20 * time.Millisecond})
	waitFor(t, 5*time.Second, func() bool { _, err := os.Stat(stale); return errors.Is(err, os.ErrNotExist) })
	stop()
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the temporary file still being written was removed: %v", err)
	}
}

// truthJob returns a job whose bindings are those of the v9-mixed
// fixture's ground truth.
func truthJob(t *testing.T) *Job {
	t.Helper()
	bindings, _ := truthBindings(t, filepath.Join(fixtures.Dir(t), "v9-mixed.truth.csv"))
	job, err := NewJob(Options{Sources: []Source{NewBindingsFile(bindings)}})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// TestWatchForgetsRemovedDirs: nfexpire removes old day directories of
// nfcapd -S layouts. The watcher must forget them: cleaning temporary
// files every hour must not warn about each directory ever removed (over
// weeks, hundreds of warnings an hour).
func TestWatchForgetsRemovedDirs(t *testing.T) {
	job := truthJob(t)
	dir := t.TempDir()
	day := filepath.Join(dir, "2023", "11", "14")
	if err := os.MkdirAll(day, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logged bytes.Buffer
	var shift time.Duration // added to the clock
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(shift)
	}
	stop, _ := startWatch(t, job, dir, filepath.Join(t.TempDir(), "enriched.log"), WatchOptions{
		Poll: 20 * time.Millisecond, now: now,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logged, mu: &mu}, nil)),
	})
	time.Sleep(100 * time.Millisecond)
	if err := os.RemoveAll(filepath.Join(dir, "2023")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	shift = 2 * StaleTempAge // the hourly cleaning is due
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	stop()
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logged.String(), "could not remove temporary files") {
		t.Errorf("warned about a removed directory:\n%s", logged.String())
	}
}
