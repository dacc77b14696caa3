package enrich

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

// TestWatch runs the watcher on a directory while files "rotate" into it:
// each valid file is enriched once (also across a restart), nfcapd's open
// file is never touched, and a corrupt file is reported and left as is.
func TestWatch(t *testing.T) {
	fx := fixtures.Dir(t)
	bindings, _ := truthBindings(t, filepath.Join(fx, "v9-mixed.truth.csv"))
	job, err := NewJob(Options{Sources: []Source{NewBindingsFile(bindings)}})
	if err != nil {
		t.Fatal(err)
	}
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

func usernames(t *testing.T, path string) int {
	t.Helper()
	r, err := nfcap.OpenFile(path, nfcap.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for f, err := range r.Flows() {
		if err != nil {
			t.Fatal(err)
		}
		if f.Username != "" {
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
