package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/enrich"
	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
	"github.com/netdumper/netdumper/tracker"
)

// tmuxSession runs a command in a detached tmux session on a private
// tmux server, so the test neither sees nor disturbs other sessions.
type tmuxSession struct {
	t      *testing.T
	socket string
	name   string
}

func (s *tmuxSession) tmux(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	return string(out), err
}

// screen returns the visible pane.
func (s *tmuxSession) screen() string {
	out, err := s.tmux("capture-pane", "-p", "-t", s.name)
	if err != nil {
		return "(capture-pane: " + err.Error() + ": " + out + ")"
	}
	return out
}

// send types keys (tmux key names: Enter, Escape, j, ...).
func (s *tmuxSession) send(keys ...string) {
	s.t.Helper()
	if out, err := s.tmux(append([]string{"send-keys", "-t", s.name}, keys...)...); err != nil {
		s.t.Fatalf("send-keys %v: %v: %s", keys, err, out)
	}
}

// waitFor polls the screen until it shows every one of want.
func (s *tmuxSession) waitFor(want ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var scr string
	for time.Now().Before(deadline) {
		scr = s.screen()
		ok := true
		for _, w := range want {
			if !strings.Contains(scr, w) {
				ok = false
				break
			}
		}
		if ok {
			return scr
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("the screen never showed %q; last screen:\n%s", want, scr)
	return ""
}

// buildNetdumper builds the binary into dir.
func buildNetdumper(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "netdumper")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestTUIInTmux is the real-terminal smoke test: netdumper tui runs in a
// tmux pane over a copy of the fixtures with a bindings file; the test
// opens a file, previews it, commits it through the keys, reads the
// screens with capture-pane, and checks the result with the real nfdump.
func TestTUIInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install tmux): skipping the real-terminal smoke test")
	}
	nfdump, err := exec.LookPath("nfdump")
	if err != nil {
		t.Skip("nfdump is not installed (apt-get install nfdump): skipping the real-terminal smoke test")
	}
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	fx := fixtures.Dir(t)
	work := t.TempDir()
	bin := buildNetdumper(t, work)
	dir := filepath.Join(work, "flows")
	target := filepath.Join(dir, "2023", "11", "14", "nfcapd.202311142210")
	for src, dst := range map[string]string{
		"v9-mixed.lz4.nf":   target,
		"v9-alluser.bz2.nf": filepath.Join(dir, "2023", "11", "14", "nfcapd.202311142215"),
	} {
		data, err := os.ReadFile(filepath.Join(fx, src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var bf bytes.Buffer
	if err := tracker.WriteFile(&bf, sampleBindingsHosts(t, fx)); err != nil {
		t.Fatal(err)
	}
	bindings := filepath.Join(work, "bindings.json")
	if err := os.WriteFile(bindings, bf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// What the commit must write: the dry run of the same job.
	job, err := enrich.NewJob(enrich.Options{Sources: []enrich.Source{enrich.NewBindingsFile(bindings)}})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	written := 0 // labels the commit adds: flows without a username that get one
	if _, err := job.DryRun(context.Background(), target, func(f *nfcap.Flow, u string) bool {
		want = append(want, u)
		if f.Username == "" && u != "" {
			written++
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}

	s := &tmuxSession{t: t, socket: fmt.Sprintf("nd-smoke-%d", os.Getpid()), name: "tui"}
	t.Cleanup(func() {
		s.tmux("kill-session", "-t", s.name)
		s.tmux("kill-server")
	})
	logFile := filepath.Join(work, "tui.log")
	cmdline := fmt.Sprintf("TZ=UTC TERM=xterm-256color %s tui --dir %s --bindings %s --state %s --log %s; echo tui-exit=$?; sleep 5",
		bin, dir, bindings, filepath.Join(work, "state"), logFile)
	if out, err := s.tmux("new-session", "-d", "-s", s.name, "-x", "150", "-y", "40", cmdline); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}

	// Files: the newest file is selected; the one below is the target.
	s.waitFor("nfcapd.202311142215", "nfcapd.202311142210", "377", "290")
	s.send("j", "Enter")
	scr := s.waitFor("matched 1424 of 1500 (94.9%)", "E 2023-11-14 22:13:20.008", "chronyd")
	t.Logf("preview:\n%s", scr)
	// Commit it.
	s.send("c")
	s.waitFor("Commit labels", "1424 of 1500 records matched (94.9%)", "Rewrite 1 file in place")
	s.send("y")
	scr = s.waitFor("1 written, 0 failed")
	t.Logf("commit:\n%s", scr)
	if !strings.Contains(scr, fmt.Sprintf("✓ %d labels written", written)) {
		t.Errorf("the dialog does not show the labels written:\n%s", scr)
	}
	s.send("Enter")
	// The preview reopens on the new contents: usernames are kept now.
	s.waitFor("matched 1424 of 1500")
	s.send("q")
	s.waitFor("tui-exit=0")

	// The real nfdump reads the labels.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nfdump, "-q", "-r", target, "-o", "fmt:%line %uname")
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nfdump: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("nfdump printed %d records, want %d", len(lines), len(want))
	}
	labelled := 0
	for i, l := range lines {
		w := want[i]
		if w == "" {
			w = "<empty>"
		}
		if !strings.HasSuffix(l, " "+w) {
			t.Fatalf("record %d: nfdump prints %q, want username %q", i+1, l, w)
		}
		if want[i] != "" {
			labelled++
		}
	}
	if labelled < 1400 {
		t.Errorf("only %d of %d records carry a username", labelled, len(lines))
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(target), ".*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestTUIHangup closes the TUI's terminal (tmux kill-session hangs it up,
// as a dropped ssh connection does): the TUI stops as it does on ctrl+c
// (a commit in progress is cancelled and removes its temporary file)
// instead of dying on SIGHUP.
func TestTUIHangup(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install tmux): skipping the real-terminal test")
	}
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	work := t.TempDir()
	bin := buildNetdumper(t, work)
	dir := filepath.Join(work, "flows")
	data, err := os.ReadFile(filepath.Join(fixtures.Dir(t), "v9-mixed.lz4.nf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nfcapd.202311142210"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := &tmuxSession{t: t, socket: fmt.Sprintf("nd-hup-%d", os.Getpid()), name: "tui"}
	t.Cleanup(func() {
		s.tmux("kill-session", "-t", s.name)
		s.tmux("kill-server")
	})
	logFile := filepath.Join(work, "tui.log")
	cmdline := fmt.Sprintf("TERM=xterm-256color exec %s tui --no-tracker --dir %s --state %s --log %s",
		bin, dir, filepath.Join(work, "state"), logFile)
	if out, err := s.tmux("new-session", "-d", "-s", s.name, "-x", "120", "-y", "30", cmdline); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	s.waitFor("nfcapd.202311142210", "1500")
	if out, err := s.tmux("kill-session", "-t", s.name); err != nil {
		t.Fatalf("tmux kill-session: %v: %s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		log, _ := os.ReadFile(logFile)
		if strings.Contains(string(log), "tui stopped") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the TUI did not stop cleanly on hangup; its log:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
