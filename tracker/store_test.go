package tracker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/bbolt"
)

func TestRestartRematchesOpenBindings(t *testing.T) {
	dir := t.TempDir()
	sshd, web, web2, curl := proc(812, -3600, "sshd"), proc(900, -100, "nginx"), proc(901, 5, "nginx"), proc(2000, 0, "curl")
	host := addrs("192.0.2.10", "192.0.2.11")

	tr1, fs1 := newTestTracker(t, dir, Options{})
	step(t, tr1, fs1, 1, host, listen("0.0.0.0:22", 10, sshd), listen("0.0.0.0:80", 20, web), conn("192.0.2.10:5000", "203.0.113.5:443", 40, curl))
	step(t, tr1, fs1, 2, host, listen("0.0.0.0:22", 10, sshd), listen("0.0.0.0:80", 20, web), conn("192.0.2.10:5000", "203.0.113.5:443", 40, curl))
	seq1 := tr1.Current().Seq
	if err := tr1.Close(); err != nil {
		t.Fatal(err)
	}

	// While no daemon runs, a reader sees the history.
	ro, err := OpenStore(dir, StoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := historyOf(t, ro); len(got) != 3 || !ro.LastScan().Equal(at(2)) || ro.Host() != "web1" {
		t.Errorf("read-only store: %v, last scan %v, host %q", got, ro.LastScan(), ro.Host())
	}
	// Nothing has watched them since the last scan: there they end, for
	// a reader, and not at all for a window that begins later.
	err = ro.History(context.Background(), time.Time{}, time.Time{}, func(b Binding) error {
		if !b.Until.Equal(at(2)) {
			t.Errorf("read-only store: %s %v until %v, want the last scan %v", b.Proto, b.Local, b.Until, at(2))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	roAddrs, err := ro.AddrHistory(context.Background(), time.Time{}, time.Time{})
	if err != nil || len(roAddrs) != 2 || !roAddrs[0].Until.Equal(at(2)) {
		t.Errorf("read-only store addresses: %v, %v; want 2 ending at the last scan", roAddrs, err)
	}
	n := 0
	if err := ro.History(context.Background(), at(3), time.Time{}, func(Binding) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("read-only store: %d bindings after the last scan (%v), want none", n, err)
	}
	ro.Close()

	tr2, fs2 := newTestTracker(t, dir, Options{})
	v := tr2.Current()
	if len(v.Bindings) != 3 || !v.Time.Equal(at(2)) || v.Seq != seq1+restartGap {
		t.Errorf("view after restart: %d bindings at %v, seq %d (was %d)", len(v.Bindings), v.Time, v.Seq, seq1)
	}
	if _, err := tr2.EventsSince(seq1); !errors.Is(err, ErrResync) {
		t.Errorf("EventsSince(seq before restart) = %v, want ErrResync", err)
	}
	// sshd's listener is still there: no event, one continuous interval.
	// nginx was replaced while the tracker was down; curl is gone.
	evs := step(t, tr2, fs2, 10, addrs("192.0.2.10"), listen("0.0.0.0:22", 10, sshd), listen("0.0.0.0:80", 21, web2))
	wantEvents := []string{
		"bound tcp 0.0.0.0:80 nginx/901",
		"unbound tcp 0.0.0.0:80 nginx/900",
		"unbound tcp 192.0.2.10:5000->203.0.113.5:443 curl/2000",
	}
	if diff := cmp.Diff(wantEvents, describeEvents(evs)); diff != "" {
		t.Errorf("events after restart (-want +got):\n%s", diff)
	}
	for _, e := range evs {
		if e.Kind == EventUnbound && !e.Binding.Until.Equal(at(2)) {
			t.Errorf("%s closed at %v, want the last scan before the restart", describeBinding(&e.Binding), e.Binding.Until)
		}
	}
	wantHistory := []string{
		"tcp 0.0.0.0:22 sshd/812 [1,open)",
		"tcp 0.0.0.0:80 nginx/900 [1,2)",
		"tcp 0.0.0.0:80 nginx/901 [10,open)",
		"tcp 192.0.2.10:5000->203.0.113.5:443 curl/2000 [1,2)",
	}
	if diff := cmp.Diff(wantHistory, historyOf(t, tr2)); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	as, err := tr2.AddrHistory(context.Background(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 || !as[1].Until.Equal(at(2)) || !as[0].Until.IsZero() {
		t.Errorf("addresses after restart: %+v", as)
	}
}

func TestRestartOwnerChangedWhileDown(t *testing.T) {
	dir := t.TempDir()
	a, b := proc(1, 0, "a"), proc(2, 3, "b")
	tr1, fs1 := newTestTracker(t, dir, Options{})
	step(t, tr1, fs1, 1, nil, listen("0.0.0.0:80", 20, a))
	tr1.Close()
	tr2, fs2 := newTestTracker(t, dir, Options{})
	evs := step(t, tr2, fs2, 10, nil, listen("0.0.0.0:80", 20, b))
	if diff := cmp.Diff([]string{"owner-changed tcp 0.0.0.0:80 b/2"}, describeEvents(evs)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	want := []string{"tcp 0.0.0.0:80 a/1 [1,1)", "tcp 0.0.0.0:80 b/2 [10,open)"}
	if diff := cmp.Diff(want, historyOf(t, tr2)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// writeBolt creates a bbolt file at path filled by fn.
func writeBolt(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestForeignOrCorruptStateFile(t *testing.T) {
	garbage := bytes.Repeat([]byte("not a database, just some text\n"), 400)
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		want    string // in the error
	}{{
		name:    "garbage",
		prepare: func(t *testing.T, path string) { os.WriteFile(path, garbage, 0o600) },
		want:    "damaged or not a bbolt file",
	}, {
		name:    "short garbage",
		prepare: func(t *testing.T, path string) { os.WriteFile(path, []byte("hello"), 0o600) },
		want:    "not a netdumper state file",
	}, {
		name: "another application's bbolt file",
		prepare: func(t *testing.T, path string) {
			writeBolt(t, path, func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucket([]byte("users"))
				if err != nil {
					return err
				}
				return b.Put([]byte("alice"), []byte("admin"))
			})
		},
		want: `another application (buckets ["users"])`,
	}, {
		name: "wrong magic",
		prepare: func(t *testing.T, path string) {
			writeBolt(t, path, func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(keyMagic, []byte("someone else"))
			})
		},
		want: `magic "someone else"`,
	}, {
		name: "newer format version",
		prepare: func(t *testing.T, path string) {
			st, err := OpenStore(filepath.Dir(path), StoreOptions{Host: "h"})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.update(func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyVersion, binary.BigEndian.AppendUint32(nil, 2))
			}); err != nil {
				t.Fatal(err)
			}
			st.Close()
		},
		want: "format version 2, this netdumper reads version 1",
	}, {
		// bbolt would map it and fault reading past its end, in a
		// goroutine of its own: a crash, not an error.
		name: "cut short",
		prepare: func(t *testing.T, path string) {
			writeBolt(t, path, func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put([]byte("filler"), bytes.Repeat([]byte("x"), 64<<10))
			})
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		},
		want: "cut short",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, HistoryFile)
			tc.prepare(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{false, true} {
				var err error
				if ro {
					_, err = OpenStore(dir, StoreOptions{ReadOnly: true})
				} else {
					_, err = New(Options{Scanner: &fakeScanner{}, StateDir: dir, Host: "h"})
				}
				if !errors.Is(err, ErrNotStateFile) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("read-only %v: error %v; want ErrNotStateFile naming %s and saying %q", ro, err, path, tc.want)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("the file was modified (%d bytes -> %d)", len(before), len(after))
			}
		})
	}
}

func TestStateLocking(t *testing.T) {
	dir := t.TempDir()
	tr, _ := newTestTracker(t, dir, Options{})

	_, err := New(Options{Scanner: &fakeScanner{}, StateDir: dir, LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrStateLocked) || !strings.Contains(err.Error(), "another `netdumper serve`") {
		t.Errorf("second writer: %v, want ErrStateLocked", err)
	}
	_, err = OpenStore(dir, StoreOptions{ReadOnly: true, LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrStateLocked) || !strings.Contains(err.Error(), "ask that tracker over its API") {
		t.Errorf("reader while serving: %v, want ErrStateLocked", err)
	}
	info := DaemonInfo{PID: os.Getpid(), Host: "web1", Started: at(0), API: "http://127.0.0.1:7701"}
	if err := WriteDaemonInfo(dir, info); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDaemonInfo(dir)
	if err != nil || !cmp.Equal(got, info) {
		t.Errorf("ReadDaemonInfo = %+v, %v", got, err)
	}
	_, err = OpenStore(dir, StoreOptions{ReadOnly: true, LockTimeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d, API http://127.0.0.1:7701", os.Getpid())) {
		t.Errorf("reader with daemon info: %v", err)
	}
	// The serve.json of a serve killed with -9 names a pid that is gone.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no true command")
	}
	info.PID = dead.Process.Pid
	if err := WriteDaemonInfo(dir, info); err != nil {
		t.Fatal(err)
	}
	_, err = OpenStore(dir, StoreOptions{ReadOnly: true, LockTimeout: 50 * time.Millisecond})
	if err == nil || strings.Contains(err.Error(), "API http://") || !strings.Contains(err.Error(), "which is not running") {
		t.Errorf("reader with a dead serve's daemon info: %v", err)
	}
	if err := RemoveDaemonInfo(dir); err != nil {
		t.Fatal(err)
	}
	if err := RemoveDaemonInfo(dir); err != nil {
		t.Errorf("second remove: %v", err)
	}

	tr.Close()
	r1, err := OpenStore(dir, StoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("reader after the writer closed: %v", err)
	}
	defer r1.Close()
	r2, err := OpenStore(dir, StoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	r2.Close()

	_, err = OpenStore(t.TempDir(), StoreOptions{ReadOnly: true})
	if !errors.Is(err, ErrNoHistory) {
		t.Errorf("reader of an empty directory: %v, want ErrNoHistory", err)
	}
}

func TestRetention(t *testing.T) {
	dir := t.TempDir()
	tr, fs := newTestTracker(t, dir, Options{Retention: time.Minute})
	old, kept, live := proc(1, 0, "old"), proc(2, 0, "kept"), proc(3, 0, "live")
	step(t, tr, fs, 1, addrs("192.0.2.1", "192.0.2.2"), listen("0.0.0.0:1", 1, old), listen("0.0.0.0:3", 3, live))
	step(t, tr, fs, 2, addrs("192.0.2.1"), listen("0.0.0.0:3", 3, live))
	step(t, tr, fs, 100, addrs("192.0.2.1"), listen("0.0.0.0:2", 2, kept), listen("0.0.0.0:3", 3, live))
	step(t, tr, fs, 150, addrs("192.0.2.1"), listen("0.0.0.0:3", 3, live))
	if err := tr.expire(context.Background(), at(200)); err != nil { // cutoff 140
		t.Fatal(err)
	}
	want := []string{"tcp 0.0.0.0:2 kept/2 [100,150)", "tcp 0.0.0.0:3 live/3 [1,open)"}
	if diff := cmp.Diff(want, historyOf(t, tr)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	as, _ := tr.AddrHistory(context.Background(), time.Time{}, time.Time{})
	if len(as) != 1 {
		t.Errorf("addresses after retention: %+v", as)
	}
	if n := countKeys(t, tr.store, bucketProcs); n != 2 {
		t.Errorf("%d process records after retention, want 2 (old's swept)", n)
	}

	// A restart later applies retention too.
	tr.Close()
	tr2, _ := newTestTracker(t, dir, Options{Retention: time.Minute, Clock: func() time.Time { return at(1000) }})
	if diff := cmp.Diff([]string{"tcp 0.0.0.0:3 live/3 [1,open)"}, historyOf(t, tr2)); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
}

func countKeys(t *testing.T, s *Store, bucket []byte) int {
	t.Helper()
	n := 0
	if err := s.view(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// expiredChurn returns a tracker on dir whose store held 20,000 short
// intervals, all expired since: most of the file is free, compaction is
// due. It returns the scanner and the process too, to go on scanning.
func expiredChurn(t *testing.T, dir string) (*Tracker, *fakeScanner, *Process) {
	t.Helper()
	tr, fs := newTestTracker(t, dir, Options{Retention: time.Minute})
	p := proc(1, 0, "churn")
	for i := range 40 {
		var socks []Observed
		for j := range 500 {
			socks = append(socks, conn("192.0.2.1:1000", fmt.Sprintf("198.51.100.1:%d", 1000+i*500+j), uint64(1+i*500+j), p))
		}
		fs.set(at(float64(i)), nil, socks...)
		if err := tr.ScanOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	step(t, tr, fs, 41, nil)
	if err := tr.expire(context.Background(), at(1000)); err != nil {
		t.Fatal(err)
	}
	return tr, fs, p
}

func TestCompactFile(t *testing.T) {
	dir := t.TempDir()
	tr, fs, p := expiredChurn(t, dir)
	before, _ := os.Stat(tr.StatePath())
	if err := tr.store.compactFile(0); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(tr.StatePath())
	if after.Size() >= before.Size() {
		t.Errorf("compaction did not shrink the file: %d -> %d", before.Size(), after.Size())
	}
	// The store still works.
	step(t, tr, fs, 1100, nil, listen("0.0.0.0:1", 1, p))
	if got := historyOf(t, tr); len(got) != 1 {
		t.Errorf("history after compaction: %v", got)
	}
}

func TestStateDirFor(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	tests := []struct {
		name    string
		euid    int
		getenv  func(string) string
		want    string
		wantErr bool
	}{
		{"root", 0, env("HOME", "/root", "XDG_STATE_HOME", "/x"), "/var/lib/netdumper", false},
		{"xdg", 1000, env("HOME", "/home/a", "XDG_STATE_HOME", "/home/a/st"), "/home/a/st/netdumper", false},
		{"relative xdg ignored", 1000, env("HOME", "/home/a", "XDG_STATE_HOME", "st"), "/home/a/.local/state/netdumper", false},
		{"home", 1000, env("HOME", "/home/a"), "/home/a/.local/state/netdumper", false},
		{"nothing", 1000, env(), "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := StateDirFor(tc.euid, tc.getenv)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("StateDirFor = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestCommitFailureIsRetried(t *testing.T) {
	tr, fs := newTestTracker(t, "", Options{})
	p := proc(1, 0, "a")
	step(t, tr, fs, 1, nil, listen("0.0.0.0:1", 1, p))
	// Make the store refuse writes for one scan.
	tr.store.readOnly = true
	fs.set(at(2), nil, listen("0.0.0.0:1", 1, p), listen("0.0.0.0:2", 2, p))
	if err := tr.ScanOnce(context.Background()); err == nil {
		t.Fatal("scan with a failing store: no error")
	}
	if s := tr.Stats(); s.CommitErrors != 1 || s.Unsaved == 0 {
		t.Errorf("stats after a failed commit: %+v", s)
	}
	tr.store.readOnly = false
	step(t, tr, fs, 3, nil, listen("0.0.0.0:2", 2, p))
	want := []string{"tcp 0.0.0.0:1 a/1 [1,3)", "tcp 0.0.0.0:2 a/1 [2,open)"}
	if diff := cmp.Diff(want, historyOf(t, tr)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if s := tr.Stats(); s.Unsaved != 0 {
		t.Errorf("unsaved after a good commit: %d", s.Unsaved)
	}
}

// TestCrashLosesAtMostOneScan kills a tracker process with SIGKILL while
// it scans and checks that every scan it reported as done is in the
// store, which still opens.
func TestCrashLosesAtMostOneScan(t *testing.T) {
	if dir := os.Getenv("ND_TRACKER_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLosesAtMostOneScan$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ND_TRACKER_CRASH_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() && done < 30 {
		if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "scanned ")); err == nil {
			done = n
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if done < 30 {
		t.Fatalf("child reported %d scans", done)
	}
	st, err := OpenStore(dir, StoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("store after kill -9: %v", err)
	}
	defer st.Close()
	ports := map[uint16]bool{}
	if err := st.History(context.Background(), time.Time{}, time.Time{}, func(b Binding) error {
		ports[b.Local.Port()] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= done; i++ {
		if !ports[uint16(10000+i)] {
			t.Errorf("binding of scan %d (reported done) lost", i)
		}
	}
}

// crashChild scans forever, one new listener per scan, printing each scan
// once it is committed.
func crashChild(dir string) {
	fs := &fakeScanner{}
	tr, err := New(Options{Scanner: fs, StateDir: dir, Host: "crash"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p := proc(1, 0, "crash")
	var socks []Observed
	for i := 1; ; i++ {
		socks = append(socks, listen(fmt.Sprintf("0.0.0.0:%d", 10000+i), uint64(i), p))
		fs.set(time.Now(), nil, socks...)
		if err := tr.ScanOnce(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("scanned %d\n", i)
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRestartClosesDuplicateOpenRecords(t *testing.T) {
	dir := t.TempDir()
	p := proc(1, 0, "a")
	tr1, fs1 := newTestTracker(t, dir, Options{})
	step(t, tr1, fs1, 1, nil, listen("0.0.0.0:80", 20, p))
	// A second open record of the same socket (as a damaged history
	// might hold) must not stay open for ever.
	dup := Binding{Socket: normSocket(listen("0.0.0.0:80", 20, p).Socket), Owner: p, From: at(1)}
	if err := tr1.store.commit([]storeOp{{kind: opOpen, id: 999, b: dup}}, tr1.seq, 1000, at(2)); err != nil {
		t.Fatal(err)
	}
	tr1.Close()
	tr2, fs2 := newTestTracker(t, dir, Options{})
	step(t, tr2, fs2, 10, nil, listen("0.0.0.0:80", 20, p))
	want := []string{"tcp 0.0.0.0:80 a/1 [1,2)", "tcp 0.0.0.0:80 a/1 [1,open)"}
	if diff := cmp.Diff(want, historyOf(t, tr2)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

var (
	_ HistorySource = (*Tracker)(nil)
	_ HistorySource = (*Store)(nil)
)

// TestReadOnlyIntervalsOpenedAfterLastScan: events after the last scan
// open intervals later than it (committed when serve stops); a reader
// still sees them, ending where they began, not gone.
func TestReadOnlyIntervalsOpenedAfterLastScan(t *testing.T) {
	dir := t.TempDir()
	sc := &resolvingScanner{}
	var mu sync.Mutex
	now := at(0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tr, err := New(Options{Scanner: sc, StateDir: dir, Host: "web1", Events: fakeEvents{}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	sc.set(at(1), addrs("127.0.0.1"))
	if err := tr.ScanOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = at(2.1)
	mu.Unlock()
	l := sockEv(SockListen, 2, ProtoTCP, "0.0.0.0:8080", "", 5, proc(900, -100, "nginx"))
	l.State = StateListen
	tr.receive(l)
	tr.receive(sockEv(SockConnect, 2, ProtoTCP, "127.0.0.1:40000", "127.0.0.1:80", 1, proc(2000, 0, "curl")))
	tr.applyQueued()
	if err := tr.flushEvents(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenStore(dir, StoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	n := 0
	err = ro.History(context.Background(), time.Time{}, time.Time{}, func(b Binding) error {
		n++
		if !b.From.Equal(at(2)) || !b.Until.Equal(b.From) {
			t.Errorf("%s: %v until %v, want from and until at 2 (after the last scan at 1)", describeInterval(&b), b.From, b.Until)
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Errorf("read-only history: %d bindings (%v), want the 2 opened after the last scan", n, err)
	}
}

// TestCheckBoltSizePageSizes: a file cut short is found whatever its page
// size (those of 16 KiB and 64 KiB pages come from arm64 hosts), also
// when its first meta page is damaged and the second must be found.
func TestCheckBoltSizePageSizes(t *testing.T) {
	for _, ps := range []int{4096, 16384, 65536} {
		for _, damaged := range []bool{false, true} {
			path := filepath.Join(t.TempDir(), HistoryFile)
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{PageSize: ps})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := db.Update(func(tx *bbolt.Tx) error {
					b, err := tx.CreateBucketIfNotExists(bucketMeta)
					if err != nil {
						return err
					}
					return b.Put([]byte{byte('a' + i)}, bytes.Repeat([]byte("x"), 256<<10))
				}); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			if err := checkBoltSize(path); err != nil {
				t.Fatalf("page size %d: a whole file refused: %v", ps, err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if damaged {
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteAt([]byte{0xff, 0xff}, 16+60) // meta 0's checksum
				f.Close()
			}
			// Past the two meta pages, short of what either commit holds
			// (the older one, in meta 1, is used when meta 0 is damaged).
			if err := os.Truncate(path, min(fi.Size()/2, int64(2*ps+100))); err != nil {
				t.Fatal(err)
			}
			if err := checkBoltSize(path); !errors.Is(err, ErrNotStateFile) {
				t.Errorf("page size %d, meta 0 damaged %v: a file cut short passes: %v", ps, damaged, err)
			}
		}
	}
}

// TestCompactFileFailureIsNotFatal: compaction only saves disk space. When
// it cannot be done (a full disk; here, a temporary path that cannot be
// created), the store stays open and usable as it was, so that a tracker
// still starts.
func TestCompactFileFailureIsNotFatal(t *testing.T) {
	dir := t.TempDir()
	tr, fs, p := expiredChurn(t, dir)
	// A directory, not empty, where the compacted copy would go.
	if err := os.MkdirAll(filepath.Join(tr.StatePath()+".compact", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tr.store.compactFile(0); err != nil {
		t.Fatalf("a failed compaction is an error: %v", err)
	}
	step(t, tr, fs, 1100, nil, listen("0.0.0.0:1", 1, p))
	if got := historyOf(t, tr); len(got) != 1 {
		t.Errorf("history after a failed compaction: %v", got)
	}
}
