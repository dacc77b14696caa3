package ebpf

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/generated.sum (make generate does)")

// generatedSum records the inputs and outputs of the last `make generate`.
const generatedSum = "testdata/generated.sum"

// Inputs of bpf2go and the files it writes.
var (
	generateInputs  = []string{"bpf/kernel.h", "bpf/netdumper.bpf.c", "gen.go"}
	generateOutputs = []string{"netdumper_bpfel.go", "netdumper_bpfel.o", "netdumper_bpfeb.go", "netdumper_bpfeb.o"}
)

// TestGeneratedCurrent fails when the committed BPF objects are stale:
// the C sources or the go:generate line changed after the last `make
// generate`, or a generated file was edited. When the clang that made them
// is installed it also rebuilds them and compares the bytes.
func TestGeneratedCurrent(t *testing.T) {
	sums := map[string]string{}
	for _, f := range slices.Concat(generateInputs, generateOutputs) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		sums[f] = hex.EncodeToString(h[:])
	}
	clang := clangVersion()

	if *update {
		var b bytes.Buffer
		b.WriteString("# Written by `make generate` (go test -run TestGeneratedCurrent -update). Do not edit.\n")
		fmt.Fprintf(&b, "clang %s\n", clang)
		for _, f := range slices.Concat(generateInputs, generateOutputs) {
			fmt.Fprintf(&b, "sha256 %s %s\n", sums[f], f)
		}
		if err := os.WriteFile(generatedSum, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}

	recorded, recordedClang := readGeneratedSum(t)
	for _, f := range generateInputs {
		if recorded[f] != sums[f] {
			t.Errorf("%s changed since the last `make generate`: run `make generate` and commit the result", f)
		}
	}
	for _, f := range generateOutputs {
		if recorded[f] != sums[f] {
			t.Errorf("%s differs from what `make generate` wrote: run `make generate`, do not edit generated files", f)
		}
	}
	if t.Failed() {
		return
	}

	switch {
	case testing.Short():
		t.Log("-short: not rebuilding the BPF objects")
		return
	case clang == "":
		t.Log("clang not installed: checked the recorded hashes only")
		return
	case clang != recordedClang:
		t.Logf("clang %q differs from the %q that built the objects: checked the recorded hashes only", clang, recordedClang)
		return
	}
	if _, err := exec.LookPath("llvm-strip"); err != nil {
		t.Log("llvm-strip not installed (bpf2go needs it): checked the recorded hashes only")
		return
	}
	out := t.TempDir()
	args, err := generateArgs()
	if err != nil {
		t.Fatal(err)
	}
	// Flags must precede bpf2go's positional arguments.
	args = append(args[:3:3], append([]string{"-output-dir", out}, args[3:]...)...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "GOPACKAGE=ebpf", "GOFILE=gen.go")
	if b, err := cmd.CombinedOutput(); err != nil {
		// The hashes matched, so the objects are what make generate
		// produced from these sources; a failing rebuild here is this
		// environment's (no module cache, no network, ...).
		t.Skipf("checked the recorded hashes; could not rebuild to compare bytes: %s: %v\n%s",
			strings.Join(args, " "), err, b)
	}
	for _, f := range generateOutputs {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: rebuilding it gives different bytes; run `make generate`", f)
		}
	}
}

// readGeneratedSum parses testdata/generated.sum.
func readGeneratedSum(t *testing.T) (sums map[string]string, clang string) {
	t.Helper()
	b, err := os.ReadFile(generatedSum)
	if err != nil {
		t.Fatalf("%v: run `make generate`", err)
	}
	sums = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "clang "):
			clang = strings.TrimPrefix(line, "clang ")
		default:
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "sha256" {
				t.Fatalf("%s:%d: malformed line %q", generatedSum, n, line)
			}
			sums[f[2]] = f[1]
		}
	}
	return sums, clang
}

// clangVersion returns the first line of `clang --version`, or "".
func clangVersion() string {
	out, err := exec.Command("clang", "--version").Output()
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}

// generateArgs returns the command of gen.go's go:generate line, split
// like a shell would split it (double quotes only).
func generateArgs() ([]string, error) {
	b, err := os.ReadFile("gen.go")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		cmd, ok := strings.CutPrefix(line, "//go:generate ")
		if !ok {
			continue
		}
		var args []string
		var cur strings.Builder
		quoted, have := false, false
		for _, r := range cmd {
			switch {
			case r == '"':
				quoted, have = !quoted, true
			case r == ' ' && !quoted:
				if have {
					args = append(args, cur.String())
					cur.Reset()
					have = false
				}
			default:
				cur.WriteRune(r)
				have = true
			}
		}
		if have {
			args = append(args, cur.String())
		}
		if len(args) < 4 || args[0] != "go" || args[1] != "run" {
			return nil, fmt.Errorf("gen.go: unexpected go:generate line %q", cmd)
		}
		return args, nil
	}
	return nil, fmt.Errorf("gen.go: no go:generate line")
}
