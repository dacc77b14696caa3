package nfcap_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

// copyFixture copies a fixture into dir under name, with the given mode.
func copyFixture(t *testing.T, fixture, dir, name string, mode os.FileMode) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures.Dir(t), fixture))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// onlyFile checks that dir holds exactly the named file (no temp files).
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only %s", names, name)
	}
}

func TestReplaceFile(t *testing.T) {
	label := func(*nfcap.Flow) (string, bool) { return "sshd", true }
	t.Run("keeps mode and owner", func(t *testing.T) {
		dir := t.TempDir()
		p := copyFixture(t, "v9-mixed.lz4.nf", dir, "nfcapd.202311142210", 0o640)
		uid, gid := os.Getuid(), os.Getgid()
		if os.Geteuid() == 0 {
			uid, gid = 65534, 65534
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		st, err := nfcap.RewriteFile(context.Background(), p, label, nfcap.RewriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Inserted != 1500-377 {
			t.Errorf("stats %v", st)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v", fi.Mode())
		}
		sys := fi.Sys().(*syscall.Stat_t)
		if int(sys.Uid) != uid || int(sys.Gid) != gid {
			t.Errorf("owner %d:%d, want %d:%d", sys.Uid, sys.Gid, uid, gid)
		}
		onlyFile(t, dir, "nfcapd.202311142210")
	})
	failures := []struct {
		name  string
		file  string
		setup func(t *testing.T, p string) string // returns the path to rewrite
		ctx   func() context.Context
		label nfcap.LabelFunc
		want  error
	}{
		{name: "nfcapd still writing", file: "nfcapd.current.4242", want: nfcap.ErrFileBusy},
		{name: "not an nfdump file", file: "nfcapd.202301010000", setup: func(t *testing.T, p string) string {
			os.WriteFile(p, []byte("#!/bin/sh\necho this is not a flow file\n"), 0o644)
			return p
		}, want: nfcap.ErrBadMagic},
		{name: "cancelled", file: "nfcapd.202301010000", ctx: func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, want: context.Canceled},
		{name: "changed while rewriting", file: "nfcapd.202301010000", label: func() nfcap.LabelFunc {
			var p string
			n := 0
			return func(f *nfcap.Flow) (string, bool) {
				if n++; n == 1 {
					p = os.Getenv("ND_TEST_TARGET")
					fh, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
					fh.Write([]byte("more"))
					fh.Close()
				}
				return "x", true
			}
		}(), want: nfcap.ErrFileChanged},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := copyFixture(t, "v9-mixed.lz4.nf", dir, tc.file, 0o644)
			if tc.setup != nil {
				p = tc.setup(t, p)
			}
			t.Setenv("ND_TEST_TARGET", p)
			before, _ := os.ReadFile(p)
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			lbl := label
			if tc.label != nil {
				lbl = tc.label
			}
			_, err := nfcap.RewriteFile(ctx, p, lbl, nfcap.RewriteOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			after, _ := os.ReadFile(p)
			if tc.name != "changed while rewriting" && !bytes.Equal(before, after) {
				t.Fatal("original modified")
			}
			onlyFile(t, dir, tc.file)
		})
	}
	t.Run("write error", func(t *testing.T) {
		dir := t.TempDir()
		p := copyFixture(t, "v9-mixed.lz4.nf", dir, "f.nf", 0o644)
		boom := errors.New("boom")
		err := nfcap.ReplaceFile(context.Background(), p, func(ctx context.Context, tmp *os.File) error {
			tmp.Write([]byte("partial"))
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err %v", err)
		}
		onlyFile(t, dir, "f.nf")
	})
}

// TestReplaceFileKill9 kills a process in the middle of RewriteFile at
// random moments, at least 20 times: the file must always be either the
// complete original or the complete rewritten file.
func TestReplaceFileKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test skipped in -short mode")
	}
	dir := t.TempDir()
	orig := filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf")
	old, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	// The rewrite is deterministic: compute the expected new file once.
	wantNew := filepath.Join(dir, "expected.nf")
	rewriteTo(t, orig, wantNew, killLabel, nfcap.RewriteOptions{})
	newBytes, _ := os.ReadFile(wantNew)
	os.Remove(wantNew)

	target := filepath.Join(dir, "nfcapd.202311142213")
	dur := runChild(t, target, old, -1)
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	var sawOld, sawNew int
	for i := 0; i < 24; i++ {
		// Kill somewhere in the rewrite, a little past its usual end too.
		delay := time.Duration(rng.Int64N(int64(dur) * 5 / 4))
		runChild(t, target, old, delay)
		got, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case bytes.Equal(got, old):
			sawOld++
		case bytes.Equal(got, newBytes):
			sawNew++
		default:
			t.Fatalf("kill after %v left a file that is neither old nor new (%d bytes)", delay, len(got))
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() != filepath.Base(target) && !nfcap.IsTempFile(e.Name()) {
				t.Fatalf("unexpected file %s", e.Name())
			}
		}
	}
	t.Logf("24 kills: %d left the old file, %d the new one (rewrite takes %v)", sawOld, sawNew, dur)
}

func killLabel(f *nfcap.Flow) (string, bool) { return "killed-midway", f.Proto != nfcap.ProtoICMP }

// runChild restores target to old, then runs this test binary as a child
// that rewrites target several times over; with delay >= 0 the child is
// killed with SIGKILL delay after it starts rewriting, otherwise it runs
// to completion and runChild returns how long the rewrites took.
func runChild(t *testing.T, target string, old []byte, delay time.Duration) time.Duration {
	t.Helper()
	if err := os.WriteFile(target, old, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
	cmd.Env = append(os.Environ(), "ND_KILL_CHILD_TARGET="+target)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	// The child writes one byte when it starts rewriting.
	var b [1]byte
	if _, err := out.Read(b[:]); err != nil {
		cmd.Process.Kill()
		t.Fatalf("child did not start: %v", err)
	}
	start := time.Now()
	if delay < 0 {
		if _, err := out.Read(b[:]); err != nil {
			t.Fatalf("child did not finish: %v", err)
		}
		return time.Since(start)
	}
	time.Sleep(delay)
	cmd.Process.Signal(syscall.SIGKILL)
	return delay
}

// TestKillChild is the child side of TestReplaceFileKill9.
func TestKillChild(t *testing.T) {
	target := os.Getenv("ND_KILL_CHILD_TARGET")
	if target == "" {
		t.Skip("helper process for TestReplaceFileKill9")
	}
	os.Stdout.Write([]byte("s"))
	// The same labels each time: after the first pass the file is the new
	// one and stays so; repeating gives the parent a longer window.
	for i := 0; i < 5; i++ {
		if _, err := nfcap.RewriteFile(context.Background(), target, killLabel, nfcap.RewriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	os.Stdout.Write([]byte("d"))
}
