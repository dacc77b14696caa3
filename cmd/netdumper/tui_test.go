package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTUIDir(t *testing.T) {
	for _, tc := range []struct {
		name       string
		files      []string // created in the working directory
		given      string
		want       string
		wantSample bool
	}{
		{"source tree", []string{"go.mod", "testdata/flows/2023/11/14/nfcapd.202311142210"}, "", sampleDir, true},
		{"flow directory", []string{"nfcapd.202311142210", "testdata/flows/x"}, "", ".", false},
		{"nfcapd -S layout", []string{"2023/11/14/nfcapd.202311142210"}, "", ".", false},
		{"empty", nil, "", ".", false},
		{"given", []string{"testdata/flows/x"}, "/var/cache/nfdump", "/var/cache/nfdump", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wd := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(wd, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Chdir(wd)
			dir, sample := tuiDir(tc.given)
			if dir != tc.want || sample != tc.wantSample {
				t.Errorf("tuiDir(%q) = %q, %v; want %q, %v", tc.given, dir, sample, tc.want, tc.wantSample)
			}
		})
	}
}

func TestTUIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tui"}, "tui needs a terminal"},
		{[]string{"tui", "extra"}, "unknown command"},
		{[]string{"tui", "--nope"}, "unknown flag"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
				getenv: func(string) string { return "" }})
			if code != exitUsage || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errb.String(), exitUsage, tc.want)
			}
		})
	}
}

func TestCopyTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, f := range []string{"a/b/nfcapd.202311142210", "bindings.json"} {
		p := filepath.Join(src, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a/b/nfcapd.202311142210", "bindings.json"} {
		if b, err := os.ReadFile(filepath.Join(dst, f)); err != nil || string(b) != f {
			t.Errorf("%s: %q %v", f, b, err)
		}
	}
}
