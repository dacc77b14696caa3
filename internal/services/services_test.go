package services

import (
	"os"
	"strings"
	"testing"
)

func TestBuiltin(t *testing.T) {
	tb := Builtin()
	if tb.Len() < 100 {
		t.Fatalf("built-in table has %d entries", tb.Len())
	}
	tests := []struct {
		proto        uint8
		sport, dport uint16
		want         string
	}{
		{17, 64631, 53, "domain"}, // the C original's "domain***"
		{17, 53, 64631, "domain"},
		{6, 58408, 443, "https"},
		{6, 22, 40022, "ssh"},
		{17, 68, 67, "bootps"}, // both known: the lower port wins
		{6, 40000, 50000, ""},
		{1, 0, 0x0303, "icmp"}, // ICMP has no ports: type 3, code 3
		{58, 0, 0x8000, "icmp6"},
		{47, 0, 0, ""}, // GRE
	}
	for _, tc := range tests {
		if got := tb.ForFlow(tc.proto, tc.sport, tc.dport); got != tc.want {
			t.Errorf("ForFlow(%d, %d, %d) = %q, want %q", tc.proto, tc.sport, tc.dport, got, tc.want)
		}
	}
}

// TestSystemFile checks the parser on the machine's /etc/services when it
// has one, and that the built-in names agree with it.
func TestSystemFile(t *testing.T) {
	if _, err := os.Stat("/etc/services"); err != nil {
		t.Skip("no /etc/services on this machine")
	}
	sys, err := Load("/etc/services")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		proto uint8
		port  uint16
	}{{6, 22}, {17, 53}, {6, 443}, {6, 80}} {
		a, _ := sys.Name(c.proto, c.port)
		b, _ := Builtin().Name(c.proto, c.port)
		if a == "" || a != b {
			t.Errorf("port %d/%d: system %q, built-in %q", c.port, c.proto, a, b)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"ssh\n", "ssh 22\n", "ssh 99999/tcp\n", "ssh x/tcp\n"} {
		_, err := Parse(strings.NewReader("# header\n"+in), "svc")
		if err == nil || !strings.Contains(err.Error(), "svc:2:") {
			t.Errorf("Parse(%q): err %v, want one naming line 2", in, err)
		}
	}
	if _, err := Load("/nonexistent/services"); err != nil {
		t.Errorf("missing file should fall back to the built-in table: %v", err)
	}
}
