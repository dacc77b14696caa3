package main

// Tests of netdumper show and inspect against the real nfdump 1.7.1. The
// netdumper side runs as a child process (this test binary re-executed), so
// that TZ, the exit status and stdout/stderr are those of the real command.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netdumper/netdumper/internal/fixtures"
	"github.com/netdumper/netdumper/nfcap"
)

// TestHelperProcessNetdumper is not a test: it runs netdumper when the test
// binary is re-executed by runNetdumper.
func TestHelperProcessNetdumper(t *testing.T) {
	if os.Getenv("NETDUMPER_HELPER_PROCESS") != "1" {
		t.Skip("helper process")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(context.Background(), args, env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
}

type result struct {
	stdout, stderr string
	code           int
}

// runNetdumper runs netdumper ARGS in this process, with $TZ as tz.
func runNetdumper(t testing.TB, tz string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		if k == "TZ" {
			return tz
		}
		return os.Getenv(k)
	}
	code := run(context.Background(), args, env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: getenv})
	return result{stdout.String(), stderr.String(), code}
}

// runNetdumperProcess runs netdumper ARGS as a child process with TZ set
// in its environment.
func runNetdumperProcess(t testing.TB, tz string, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperProcessNetdumper$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "NETDUMPER_HELPER_PROCESS=1", "TZ="+tz)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("netdumper %v: %v", args, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

func nfdumpBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("nfdump")
	if err != nil {
		t.Skip("nfdump is not installed (apt-get install nfdump, or make deps); skipping the comparison with the real nfdump")
	}
	return p
}

// runNfdump runs the real nfdump with TZ set and returns its stdout.
func runNfdump(t testing.TB, tz string, args ...string) string {
	t.Helper()
	cmd := exec.Command(nfdumpBin(t), args...)
	cmd.Env = append(os.Environ(), "TZ="+tz, "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nfdump %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// fixturesDir returns the shared fixture directory.
func fixturesDir(t testing.TB) string { return fixtures.Dir(t) }

func fixtureFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fixturesDir(t), "*.nf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", fixturesDir(t), err)
	}
	return files
}

// generatedFixtures returns a fresh set of files made by make-fixtures.sh.
func generatedFixtures(t *testing.T) []string { return fixtures.Generate(t, 11) }

// showFormats are the formats compared with nfdump end to end. The long
// fmt: string holds every token the brief requires.
var showFormats = []string{
	"", // the default, fmt:%line %uname
	"line", "long", "extended", "csv",
	"fmt:%ts %te %td %pr %sa %da %sap %dap %sp %dp %pkt %byt %fl %flg %tos %in %out %uname",
}

// dropTiming removes nfdump's last summary line ("Sys: ... Wall: ..."),
// which netdumper does not print.
func dropTiming(s string) string {
	i := strings.LastIndex(strings.TrimSuffix(s, "\n"), "\n")
	if i >= 0 && strings.HasPrefix(s[i+1:], "Sys:") {
		return s[:i+1]
	}
	return s
}

// compareShow runs netdumper show and nfdump on the same input with the
// same options and compares their output.
func compareShow(t *testing.T, tz, format string, quiet, plain bool, nfdumpInput []string, ours []string) {
	t.Helper()
	var common []string
	if quiet {
		common = append(common, "-q")
	}
	if plain {
		common = append(common, "-N")
	}
	nfArgs := append(append([]string{}, common...), nfdumpInput...)
	ndArgs := append([]string{"show"}, common...)
	if format != "" {
		nfArgs = append(nfArgs, "-o", format)
		ndArgs = append(ndArgs, "-o", format)
	} else {
		nfArgs = append(nfArgs, "-o", defaultShowFormat)
	}
	want := runNfdump(t, tz, nfArgs...)
	if !quiet && format != "csv" {
		want = dropTiming(want)
	}
	got := runNetdumper(t, tz, append(ndArgs, ours...)...)
	if got.code != 0 || got.stderr != "" {
		t.Fatalf("netdumper %v: exit %d, stderr %q", ndArgs, got.code, got.stderr)
	}
	if got.stdout != want {
		wl, gl := strings.Split(want, "\n"), strings.Split(got.stdout, "\n")
		for i := 0; i < len(wl) && i < len(gl); i++ {
			if wl[i] != gl[i] {
				t.Fatalf("nfdump %v and netdumper %v differ at line %d of %d/%d:\nnfdump:    %q\nnetdumper: %q", nfArgs, ndArgs, i+1, len(wl), len(gl), wl[i], gl[i])
			}
		}
		t.Fatalf("nfdump %v printed %d lines, netdumper %v %d", nfArgs, len(wl), ndArgs, len(gl))
	}
}

func checkShowFiles(t *testing.T, files []string) {
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			for _, format := range showFormats {
				for _, quiet := range []bool{true, false} {
					name := format
					if name == "" {
						name = "default"
					}
					if quiet {
						name += "/q"
					}
					t.Run(name, func(t *testing.T) {
						compareShow(t, "UTC", format, quiet, false, []string{"-r", path}, []string{path})
					})
				}
			}
			t.Run("plain", func(t *testing.T) {
				compareShow(t, "UTC", "extended", false, true, []string{"-r", path}, []string{path})
			})
			t.Run("TZ=Asia/Kolkata", func(t *testing.T) {
				compareShow(t, "Asia/Kolkata", "", false, false, []string{"-r", path}, []string{path})
			})
		})
	}
}

func TestShowFixtures(t *testing.T) {
	nfdumpBin(t)
	checkShowFiles(t, fixtureFiles(t))
}

func TestShowGeneratedFixtures(t *testing.T) {
	checkShowFiles(t, generatedFixtures(t))
}

// TestShowTimeZones: every form of $TZ the C library reads (zone names,
// zone files, POSIX rules with and without daylight time) prints the
// times nfdump prints.
func TestShowTimeZones(t *testing.T) {
	nfdumpBin(t)
	file := filepath.Join(fixturesDir(t), "v9-mixed.none.nf")
	for _, tz := range []string{"Europe/Berlin", ":America/New_York", "/usr/share/zoneinfo/Asia/Kolkata",
		"JST-9", "UTC+3", "<+0530>-5:30", "CET-1CEST,M3.5.0,M10.5.0/3", "AEST-10AEDT,M10.1.0,M4.1.0/3", "not a zone"} {
		t.Run(tz, func(t *testing.T) {
			compareShow(t, tz, "line", true, false, []string{"-r", file}, []string{file})
		})
	}
}

// TestShowDirectory reads a directory tree like nfdump -R does: recursively,
// in name order, skipping the files nfcapd is still writing.
func TestShowDirectory(t *testing.T) {
	nfdumpBin(t)
	fx := fixturesDir(t)
	dir := t.TempDir()
	copyFile := func(src, dst string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(fx, src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("softflowd-v9.lzo.nf", "2023/11/14/nfcapd.202311142200")
	copyFile("v9-alluser.bz2.nf", "2023/11/14/nfcapd.202311142205")
	copyFile("v9-mixed.lz4.nf", "2023/11/15/nfcapd.202311150000")
	copyFile("ipfix-mixed.lz4.nf", "2023/11/15/nfcapd.current.4242")
	for _, quiet := range []bool{true, false} {
		compareShow(t, "UTC", "", quiet, false, []string{"-R", dir}, []string{dir})
	}
	// A symbolic link to a file is read like the file.
	link := filepath.Join(t.TempDir(), "nfcapd.202311150005")
	if err := os.Symlink(filepath.Join(dir, "2023/11/15/nfcapd.202311150000"), link); err != nil {
		t.Fatal(err)
	}
	if got, want := runNetdumper(t, "UTC", "show", "-q", filepath.Dir(link)).stdout, runNetdumper(t, "UTC", "show", "-q", link).stdout; got != want || got == flowfmtNoMatch {
		t.Errorf("directory with a link printed %d bytes, the link itself %d", len(got), len(want))
	}
	// A dangling link among the files is named, and does not hide them:
	// they are printed as nfdump prints them, and the exit code says that
	// something could not be read.
	whole := runNetdumper(t, "UTC", "show", "-q", dir).stdout
	dangling := filepath.Join(dir, "2023/11/14/nfcapd.202311142210")
	if err := os.Symlink(filepath.Join(dir, "gone"), dangling); err != nil {
		t.Fatal(err)
	}
	r := runNetdumper(t, "UTC", "show", "-q", dir)
	if r.stdout != whole || whole == flowfmtNoMatch || r.code == 0 || !strings.Contains(r.stderr, dangling) {
		t.Errorf("with a dangling link: exit %d, %d bytes (want %d), stderr %q", r.code, len(r.stdout), len(whole), r.stderr)
	}
	os.Remove(dangling)
	// Files of other names are not read from a directory, but always when named.
	copyFile("ipfix-mixed.lz4.nf", "2023/11/15/notes.nf")
	got := runNetdumper(t, "UTC", "show", "-q", dir)
	want := runNfdump(t, "UTC", "-q", "-R", filepath.Join(dir, "2023"), "-o", defaultShowFormat)
	if got.stdout == want {
		t.Errorf("netdumper read notes.nf from the directory")
	}
	one := runNetdumper(t, "UTC", "show", "-q", filepath.Join(dir, "2023/11/15/nfcapd.current.4242"))
	if one.code != 0 || one.stdout != runNfdump(t, "UTC", "-q", "-r", filepath.Join(fx, "ipfix-mixed.lz4.nf"), "-o", defaultShowFormat) {
		t.Errorf("a named nfcapd.current file was not printed: exit %d, stderr %q", one.code, one.stderr)
	}
}

const flowfmtNoMatch = "No matching flows\n"

// TestShowEmpty: no flows gives "No matching flows", with and without -q.
func TestShowEmpty(t *testing.T) {
	nfdumpBin(t)
	src := filepath.Join(fixturesDir(t), "softflowd-v9.lzo.nf")
	empty := filepath.Join(t.TempDir(), "nfcapd.empty")
	runNfdump(t, "UTC", "-r", src, "-w", empty, "proto 99")
	for _, format := range []string{"", "csv", "line"} {
		for _, quiet := range []bool{true, false} {
			compareShow(t, "UTC", format, quiet, false, []string{"-r", empty}, []string{empty})
		}
	}
	if got := runNetdumper(t, "UTC", "show", "-o", "json", empty); got.stdout != "" || got.code != 0 {
		t.Errorf("json of an empty file: %q, exit %d", got.stdout, got.code)
	}
}

func TestShowJSON(t *testing.T) {
	path := filepath.Join(fixturesDir(t), "v9-alluser.bz2.nf")
	got := runNetdumper(t, "UTC", "show", "-o", "json", path)
	if got.code != 0 {
		t.Fatalf("exit %d: %s", got.code, got.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n")
	if len(lines) != 300 {
		t.Fatalf("%d JSON lines, want 300", len(lines))
	}
	if !strings.HasPrefix(lines[0], `{"type":"flow","first":"2023-11-14T22:13:20.047Z"`) {
		t.Errorf("first line: %s", lines[0])
	}
}

// TestShowErrors checks exit statuses and messages.
func TestShowErrors(t *testing.T) {
	fx := fixturesDir(t)
	good := filepath.Join(fx, "softflowd-v9.lzo.nf")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.nf")
	if err := os.WriteFile(garbage, []byte("this is not an nfdump file at all, not even close"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(fx, "v9-mixed.none.nf"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.nf")
	if err := os.WriteFile(truncated, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	legacy, _ := filepath.Glob(filepath.Join(fx, "seed-1.6", "*.nf"))
	if len(legacy) == 0 {
		t.Fatal("no seed-1.6 files")
	}
	goodOut := runNetdumper(t, "UTC", "show", "-q", good).stdout

	tests := []struct {
		name       string
		args       []string
		code       int
		stderr     []string // substrings
		stdoutHas  string   // substring
		stdoutNone bool
	}{
		{name: "no args", args: []string{"show"}, code: 2, stderr: []string{"at least one FILE"}, stdoutNone: true},
		{name: "bad format", args: []string{"show", "-o", "fmt:%nosuch", good}, code: 2, stderr: []string{"%nosuch"}, stdoutNone: true},
		{name: "geo format", args: []string{"show", "-o", "fmt:%gsa", good}, code: 2, stderr: []string{"geo"}, stdoutNone: true},
		{name: "bad flag", args: []string{"show", "--nosuch", good}, code: 2, stdoutNone: true},
		{name: "missing file", args: []string{"show", "-q", filepath.Join(dir, "nosuch"), good}, code: 1,
			stderr: []string{"nosuch", "no such file"}, stdoutHas: goodOut},
		{name: "garbage", args: []string{"show", "-q", garbage, good}, code: 1, stderr: []string{"garbage.nf", "magic"}, stdoutHas: goodOut},
		{name: "truncated", args: []string{"show", "-q", good, truncated}, code: 1, stderr: []string{"truncated.nf"}, stdoutHas: goodOut},
		{name: "legacy", args: []string{"show", legacy[0]}, code: 1, stderr: []string{"nfdump -r " + legacy[0] + " -w "}},
		{name: "inspect missing", args: []string{"inspect", filepath.Join(dir, "nosuch")}, code: 1, stderr: []string{"nosuch"}},
		{name: "inspect no args", args: []string{"inspect"}, code: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runNetdumper(t, "UTC", tc.args...)
			if got.code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", got.code, tc.code, got.stderr)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(got.stderr, s) {
					t.Errorf("stderr %q does not mention %q", got.stderr, s)
				}
			}
			if tc.stdoutNone && got.stdout != "" {
				t.Errorf("stdout %q, want nothing", got.stdout)
			}
			if !strings.Contains(got.stdout, tc.stdoutHas) {
				t.Errorf("stdout does not hold the readable file's records:\n%s", got.stdout)
			}
		})
	}
}

// TestShowProcess runs the real command as a process: the time zone comes
// from the process environment (time.Local), output and exit status from
// the process.
func TestShowProcess(t *testing.T) {
	nfdumpBin(t)
	path := filepath.Join(fixturesDir(t), "softflowd-ipfix.none.nf")
	for _, tz := range []string{"UTC", "America/St_Johns"} {
		want := dropTiming(runNfdump(t, tz, "-r", path, "-o", defaultShowFormat))
		got := runNetdumperProcess(t, tz, "show", path)
		if got.code != 0 || got.stdout != want {
			t.Errorf("TZ=%s: exit %d, stderr %q, output:\n%s\nnfdump:\n%s", tz, got.code, got.stderr, got.stdout, want)
		}
	}
	got := runNetdumperProcess(t, "UTC", "show", "-o", "fmt:%nosuch", path)
	if got.code != 2 || got.stdout != "" || !strings.Contains(got.stderr, "%nosuch") {
		t.Errorf("bad format: exit %d, stdout %q, stderr %q", got.code, got.stdout, got.stderr)
	}
}

// TestShowDamagedRecord: a record whose size is damaged midway through a
// block: the records before it are printed as nfdump prints them, then
// the error names the block and the record's offset.
func TestShowDamagedRecord(t *testing.T) {
	path, off := fixtures.DamagedRecord(t, "v9-mixed.none.nf", 700)
	cmd := exec.Command(nfdumpBin(t), "-q", "-r", path, "-o", "line")
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	want, _ := cmd.Output() // nfdump prints what it can, then exits 1
	r := runNetdumper(t, "UTC", "show", "-q", "-o", "line", path)
	if r.stdout != string(want) || strings.Count(r.stdout, "\n") != 699 {
		t.Errorf("printed %d lines, nfdump %d", strings.Count(r.stdout, "\n"), strings.Count(string(want), "\n"))
	}
	if wantErr := fmt.Sprintf("block 0 at offset 40: record at payload offset %d", off); r.code == 0 || !strings.Contains(r.stderr, wantErr) {
		t.Errorf("exit %d, stderr %q; want an error with %q", r.code, r.stderr, wantErr)
	}
}

// TestShowCutAppendix: a file whose appendix is cut short still shows its
// flows, as nfdump shows them, after a warning naming the appendix.
func TestShowCutAppendix(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixturesDir(t), "v9-mixed.none.nf"))
	if err != nil {
		t.Fatal(err)
	}
	offApp := binary.LittleEndian.Uint64(b[24:])
	path := filepath.Join(t.TempDir(), "nfcapd.202311142210")
	if err := os.WriteFile(path, b[:offApp+20], 0o644); err != nil {
		t.Fatal(err)
	}
	want := runNfdump(t, "UTC", "-q", "-r", path, "-o", "line")
	r := runNetdumper(t, "UTC", "show", "-q", "-o", "line", path)
	if r.code != 0 || r.stdout != want || strings.Count(want, "\n") != 1500 || !strings.Contains(r.stderr, "appendix block at offset") {
		t.Errorf("exit %d, %d lines (nfdump %d), stderr %q", r.code, strings.Count(r.stdout, "\n"), strings.Count(want, "\n"), r.stderr)
	}
	// enrich refuses it: rewriting it would lose the appendix.
	if _, err := nfcap.RewriteFile(context.Background(), path, func(*nfcap.Flow) (string, bool) { return "x", true }, nfcap.RewriteOptions{}); err == nil {
		t.Error("a file without its appendix was rewritten")
	}
}
