package enrich

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDoneLogTornLastLine: a crash in the middle of an append leaves a
// last line without its newline. That line is what was being recorded
// when the process died: it is dropped, and the log still opens with
// every complete entry (a watcher that refused to start would stop
// enrichment altogether).
func TestDoneLogTornLastLine(t *testing.T) {
	dir := t.TempDir()
	done := filepath.Join(dir, "nfcapd.202311142210")
	if err := os.WriteFile(done, []byte("enriched"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(done)
	if err != nil {
		t.Fatal(err)
	}
	for _, torn := range []string{"", "/", dir + "/nfcapd.202311142215\t12", dir + "/nfcapd.202311142215\t12\t"} {
		t.Run(fmt.Sprintf("%q", torn), func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "enriched.log")
			content := fmt.Sprintf("%s\t%d\t%d\n%s", done, fi.Size(), fi.ModTime().UnixNano(), torn)
			if err := os.WriteFile(logPath, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := OpenDoneLog(logPath)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer l.Close()
			if !l.Done(done, fi) {
				t.Errorf("complete entry before the torn line lost")
			}
		})
	}
}

// TestDoneLogShortWrite: an append that fails half-way (a full disk) must
// not leave a partial line that spoils the next entry, nor a log that
// refuses to open afterwards. The short write is provoked with the file
// size limit (RLIMIT_FSIZE; Go ignores SIGXFSZ, so the write fails with
// EFBIG after writing what fits).
func TestDoneLogShortWrite(t *testing.T) {
	dir := t.TempDir()
	files := make([]string, 3)
	for i := range files {
		files[i] = filepath.Join(dir, fmt.Sprintf("nfcapd.20231114221%d", i))
		if err := os.WriteFile(files[i], []byte("enriched"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(t.TempDir(), "enriched.log")
	l, err := OpenDoneLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Mark(files[0]); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	// Room for the path and its tab, not for the rest of the line.
	lim := old
	lim.Cur = uint64(fi.Size()) + uint64(len(files[1])) + 2
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	err = l.Mark(files[1])
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatalf("restoring the file size limit: %v", rerr)
	}
	if err == nil {
		t.Skip("the write did not fail under the file size limit")
	}
	if err := l.Mark(files[2]); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err = OpenDoneLog(logPath)
	if err != nil {
		t.Fatalf("reopen after a failed append: %v", err)
	}
	defer l.Close()
	for _, i := range []int{0, 2} {
		fi, err := os.Stat(files[i])
		if err != nil {
			t.Fatal(err)
		}
		if !l.Done(files[i], fi) {
			t.Errorf("%s: entry lost", filepath.Base(files[i]))
		}
	}
}
