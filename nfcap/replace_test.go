package nfcap_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
		{name: "link to the file nfcapd is writing", file: "nfcapd.current.4243", setup: func(t *testing.T, p string) string {
			link := filepath.Join(t.TempDir(), "latest.nf")
			if err := os.Symlink(p, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, want: nfcap.ErrFileBusy},
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
	// The rewrite is deterministic: compute the two files the child
	// alternates between once (labelled a, then relabelled b), and check
	// that relabelling b with a gives a again.
	rw := func(in []byte, pass int) []byte {
		t.Helper()
		src, dst := filepath.Join(dir, "in.nf"), filepath.Join(dir, "out.nf")
		defer os.Remove(src)
		defer os.Remove(dst)
		if err := os.WriteFile(src, in, 0o644); err != nil {
			t.Fatal(err)
		}
		rewriteTo(t, src, dst, killLabel(pass), killOptions)
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	newA := rw(old, 0)
	newB := rw(newA, 1)
	if !bytes.Equal(rw(newB, 0), newA) {
		t.Fatal("relabelling is not deterministic")
	}

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
		case bytes.Equal(got, newA), bytes.Equal(got, newB):
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

// killLabel labels the flows of the child's pass-th rewrite: the label
// alternates, so that every pass changes the file and renames a new one
// over it (an unchanged file is left alone).
func killLabel(pass int) nfcap.LabelFunc {
	name := [2]string{"killed-midway-a", "killed-midway-b"}[pass%2]
	return func(f *nfcap.Flow) (string, bool) { return name, f.Proto != nfcap.ProtoICMP }
}

var killOptions = nfcap.RewriteOptions{Overwrite: true}

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
	// Repeating gives the parent a longer window.
	for i := 0; i < 5; i++ {
		st, err := nfcap.RewriteFile(context.Background(), target, killLabel(i), killOptions)
		if err != nil {
			t.Fatal(err)
		}
		if st.Unchanged {
			t.Fatalf("pass %d left the file unchanged", i)
		}
	}
	os.Stdout.Write([]byte("d"))
}

// TestRewriteFileUnchanged: a rewrite that changes no record leaves the
// original alone (same inode, same modification time); one that changes
// the compression does not.
func TestRewriteFileUnchanged(t *testing.T) {
	dir := t.TempDir()
	p := copyFixture(t, "v9-mixed.lz4.nf", dir, "nfcapd.202311142210", 0o644)
	label := func(*nfcap.Flow) (string, bool) { return "sshd", true }
	none := func(*nfcap.Flow) (string, bool) { return "", false }
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	tests := []struct {
		name    string
		label   nfcap.LabelFunc
		opts    nfcap.RewriteOptions
		changed bool
	}{
		{"first labelling", label, nfcap.RewriteOptions{}, true},
		{"the same labels again", label, nfcap.RewriteOptions{}, false},
		{"overwriting the other usernames", label, nfcap.RewriteOptions{Overwrite: true}, true},
		{"overwriting with the same labels", label, nfcap.RewriteOptions{Overwrite: true}, false},
		{"no labels", none, nfcap.RewriteOptions{}, false},
		{"same compression asked", none, nfcap.RewriteOptions{Recompress: true, Compression: nfcap.CompressLZ4}, false},
		{"another compression", none, nfcap.RewriteOptions{Recompress: true, Compression: nfcap.CompressLZO}, true},
		{"other labels with overwrite", func(*nfcap.Flow) (string, bool) { return "nginx", true }, nfcap.RewriteOptions{Overwrite: true}, true},
	}
	for _, tc := range tests {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		before, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st, err := nfcap.RewriteFile(context.Background(), p, tc.label, tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		after, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		replaced := !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime())
		if st.Unchanged == tc.changed || replaced != tc.changed {
			t.Errorf("%s: Unchanged %v, file replaced %v; want a change: %v (%v)", tc.name, st.Unchanged, replaced, tc.changed, st)
		}
		onlyFile(t, dir, "nfcapd.202311142210")
	}
}

// TestReplaceFileAsUser rewrites files as a user who is not root (nobody,
// in the "users" group) and owns the directory, so that the rename itself
// would always go through. The user's own file keeps its group (a
// collector's nfdump group, say), so that the other members can still read
// it; a file the user may not write, or that belongs to someone else (whom
// the replacement would silently dispossess), is refused and left as it
// was, owner included.
func TestReplaceFileAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the rewrite as another user")
	}
	const uid, gid = 65534, 100 // nobody, in the "users" group
	dir := t.TempDir()
	// The child (this test binary, run as nobody) needs to reach its copy
	// of the binary and the file's directory.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "child.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		uid, gid int
		mode     os.FileMode
		want     string // in the refusal; "" if the rewrite must work
	}{
		{"own file keeps its group", uid, gid, 0o640, ""},
		{"own read-only file", uid, gid, 0o440, "not writable (mode -r--r-----)"},
		{"root's file", 0, 0, 0o644, "belongs to uid 0, and replacing it as uid 65534 would make it yours"},
		{"root's file the group may write", 0, gid, 0o664, "belongs to uid 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work, err := os.MkdirTemp(dir, "flows")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(work, uid, gid); err != nil {
				t.Fatal(err)
			}
			p := copyFixture(t, "v9-mixed.lz4.nf", work, "nfcapd.202311142210", tc.mode)
			if err := os.Chown(p, tc.uid, tc.gid); err != nil {
				t.Fatal(err)
			}
			orig, _ := os.ReadFile(p)
			cmd := exec.Command(bin, "-test.run=^TestRewriteAsChild$")
			cmd.Env = append(os.Environ(), "ND_REWRITE_CHILD_TARGET="+p, "ND_REWRITE_CHILD_REFUSAL="+tc.want)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{gid}}}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("rewrite as uid %d: %v\n%s", uid, err, out)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			sys := fi.Sys().(*syscall.Stat_t)
			wantUID := tc.uid
			if int(sys.Uid) != wantUID || int(sys.Gid) != tc.gid || fi.Mode().Perm() != tc.mode {
				t.Errorf("after the rewrite: %d:%d %v, want %d:%d %v", sys.Uid, sys.Gid, fi.Mode().Perm(), wantUID, tc.gid, tc.mode)
			}
			now, _ := os.ReadFile(p)
			if changed := !bytes.Equal(now, orig); changed != (tc.want == "") {
				t.Errorf("file changed: %v", changed)
			}
			onlyFile(t, work, "nfcapd.202311142210")
		})
	}
}

// TestRewriteAsChild is the child side of TestReplaceFileAsUser: it
// rewrites the file and expects success, or a permission error with the
// given text.
func TestRewriteAsChild(t *testing.T) {
	target := os.Getenv("ND_REWRITE_CHILD_TARGET")
	if target == "" {
		t.Skip("helper process for TestReplaceFileAsUser")
	}
	st, err := nfcap.RewriteFile(context.Background(), target, func(*nfcap.Flow) (string, bool) { return "sshd", true }, nfcap.RewriteOptions{})
	if want := os.Getenv("ND_REWRITE_CHILD_REFUSAL"); want != "" {
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), target) {
			t.Fatalf("rewrite: %v, want a permission error naming the file and saying %q", err, want)
		}
		return
	}
	if err != nil || st.Unchanged {
		t.Fatalf("rewrite: %v (%v)", err, st)
	}
}

// TestRemoveStaleTemps removes what a killed rewrite left behind, and
// nothing else: not a temporary file still being written, not a flow file,
// not a directory.
func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	files := []struct {
		name  string
		old   bool
		stale bool
	}{
		{".nfcapd.202311142210.netdumper-123.tmp", true, true},
		{".nfcapd.202311142215.netdumper-456.tmp", false, false}, // being written
		{"nfcapd.202311142210", true, false},
		{".nfcapd.202311142220.other.tmp", true, false},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if f.old {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	sub := filepath.Join(dir, ".nfcapd.202311142230.netdumper-789.tmp") // a directory
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(sub, old, old); err != nil {
		t.Fatal(err)
	}
	removed, err := nfcap.RemoveStaleTemps(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != filepath.Join(dir, files[0].name) {
		t.Errorf("removed %v, want only %s", removed, files[0].name)
	}
	for _, f := range files {
		_, err := os.Stat(filepath.Join(dir, f.name))
		if gone := errors.Is(err, os.ErrNotExist); gone != f.stale {
			t.Errorf("%s: removed %v, want %v", f.name, gone, f.stale)
		}
	}
	if _, err := os.Stat(sub); err != nil {
		t.Errorf("directory: %v", err)
	}
	if _, err := nfcap.RemoveStaleTemps(filepath.Join(dir, "missing"), time.Hour); err == nil {
		t.Error("no error for a missing directory")
	}
}

// TestRewriteFileUnfinished: a file whose header announces fewer data
// blocks than it holds and no appendix (nfcapd killed before it closed
// the file, which writes the real header last) has flows nfdump does not
// read. A rewrite would drop them for good, so it is refused and the
// original kept; junk after an appendix (nfdump -i) is not data and is
// still dropped.
func TestRewriteFileUnfinished(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name    string
		fixture string
		patch   func(b []byte) []byte
		want    error // nil: the rewrite succeeds
	}{
		{name: "header of a file nfcapd never closed", fixture: "v9-mixed.lz4.nf", patch: func(b []byte) []byte {
			le.PutUint16(b[18:], 0) // appendixBlocks
			le.PutUint64(b[24:], 0) // offAppendix
			le.PutUint32(b[36:], 0) // NumBlocks
			return b
		}, want: nfcap.ErrCorrupt},
		{name: "one of two data blocks announced, no appendix", fixture: "v9-multiblock.lzo.nf", patch: func(b []byte) []byte {
			le.PutUint16(b[18:], 0)
			le.PutUint64(b[24:], 0)
			le.PutUint32(b[36:], 1)
			return b
		}, want: nfcap.ErrCorrupt},
		{name: "junk after the appendix", fixture: "v9-mixed.lz4.nf", patch: func(b []byte) []byte {
			return append(b, make([]byte, 386)...)
		}},
		{name: "no appendix, nothing after the blocks", fixture: "v9-mixed.lz4.nf", patch: func(b []byte) []byte {
			off := le.Uint64(b[24:])
			le.PutUint16(b[18:], 0)
			le.PutUint64(b[24:], 0)
			return b[:off]
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := copyFixture(t, tc.fixture, dir, "nfcapd.202311142210", 0o644)
			orig, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			orig = tc.patch(orig)
			if err := os.WriteFile(p, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = nfcap.RewriteFile(context.Background(), p, func(*nfcap.Flow) (string, bool) { return "sshd", true },
				nfcap.RewriteOptions{Recompress: true, Compression: nfcap.CompressBZ2})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("rewrite: %v", err)
				}
				onlyFile(t, dir, "nfcapd.202311142210")
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err %v, want %v naming %s", err, tc.want, p)
			}
			after, _ := os.ReadFile(p)
			if !bytes.Equal(orig, after) {
				t.Fatal("original modified")
			}
			onlyFile(t, dir, "nfcapd.202311142210")
		})
	}
}
