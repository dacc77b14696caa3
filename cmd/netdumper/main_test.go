package main

import (
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// TestVersion: --version (and -v) print what the version command prints.
func TestVersion(t *testing.T) {
	want := runNetdumper(t, "UTC", "version")
	if want.code != exitOK || !strings.HasPrefix(want.stdout, "netdumper ") {
		t.Fatalf("version: exit %d, %q", want.code, want.stdout)
	}
	for _, flag := range []string{"--version", "-v"} {
		r := runNetdumper(t, "UTC", flag)
		if r.code != exitOK || r.stdout != want.stdout || r.stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", flag, r.code, r.stdout, r.stderr, want.stdout)
		}
	}
}

// TestUsageLines: each command's usage line names [flags] once and ends
// with its arguments.
func TestUsageLines(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"show"}, "netdumper show [flags] FILE|DIR..."},
		{[]string{"inspect"}, "netdumper inspect [flags] FILE..."},
		{[]string{"enrich"}, "netdumper enrich [flags] PATH..."},
		{[]string{"tui"}, "netdumper tui [flags]"},
		{[]string{"serve"}, "netdumper serve [flags]"},
		{[]string{"bindings"}, "netdumper bindings [flags]"},
		{[]string{"bindings", "export"}, "netdumper bindings export [flags]"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runNetdumper(t, "UTC", append(tc.args, "--help")...)
			_, after, ok := strings.Cut(r.stdout, "Usage:\n  ")
			line, _, _ := strings.Cut(after, "\n")
			if r.code != exitOK || !ok || line != tc.want {
				t.Errorf("exit %d, usage line %q, want %q", r.code, line, tc.want)
			}
		})
	}
}

// TestHelpWidth: the help texts fit 80 columns (examples, which are
// command lines, aside), so that no line is wrapped by the terminal.
func TestHelpWidth(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for i, line := range strings.Split(c.Long, "\n") {
			if n := utf8.RuneCountInString(line); n > 80 {
				t.Errorf("%s: line %d of the help is %d columns: %q", c.CommandPath(), i+1, n, line)
			}
		}
		// The usage: flags wrapped to 80 columns (examples are commands
		// to copy, and stay whole).
		examples := false
		for _, line := range strings.Split(c.UsageString(), "\n") {
			if line != "" && !strings.HasPrefix(line, " ") {
				examples = line == "Examples:"
			}
			if n := utf8.RuneCountInString(line); n > 80 && !examples {
				t.Errorf("%s: a line of the usage is %d columns: %q", c.CommandPath(), n, line)
			}
		}
		// Listed in the parent's help as "  NAME<padding>  SHORT".
		if n := 2 + 11 + 2 + utf8.RuneCountInString(c.Short); n > 80 {
			t.Errorf("%s: the short help makes a %d-column line: %q", c.CommandPath(), n, c.Short)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}))
}
