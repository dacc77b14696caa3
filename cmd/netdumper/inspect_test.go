package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netdumper/netdumper/internal/fixtures"
)

// keyValues parses "Key : value" / "Key: value" lines.
func keyValues(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

// checkInspect compares inspect --json with nfdump -v FILE and
// nfdump -I -r FILE, and the username counts with nfdump's %uname column.
func checkInspect(t *testing.T, path string) {
	got := runNetdumper(t, "UTC", "inspect", "--json", path)
	if got.code != 0 {
		t.Fatalf("inspect: exit %d: %s", got.code, got.stderr)
	}
	var rep fileReport
	if err := json.Unmarshal([]byte(got.stdout), &rep); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, got.stdout)
	}
	v := keyValues(runNfdump(t, "UTC", "-v", path))
	stat := keyValues(runNfdump(t, "UTC", "-I", "-r", path))

	compressions := map[string]string{"none": "not compressed", "lzo": "lzo compressed", "bz2": "bz2 compressed", "lz4": "lz4 compressed"}
	checks := []struct {
		what      string
		nfdump    string
		netdumper string
	}{
		{"nfdump -v Version", v["Version"], fmt.Sprintf("%d - %s", rep.Layout, compressions[rep.Compression])},
		{"nfdump -v Created", v["Created"], time.Unix(rep.CreatedUnix, 0).UTC().Format("2006-01-02 15:04:05")},
		{"nfdump -v Appdx blks", v["Appdx blks"], fmt.Sprint(rep.AppendixBlocks)},
		{"nfdump -v Data blks", v["Data blks"], fmt.Sprint(rep.DataBlocks)},
		{"nfdump -v Type 3 blocks", v["Type 3 blocks"], fmt.Sprint(rep.BlockTypes["3"])},
		{"nfdump -v Records", v["Records"], fmt.Sprint(rep.Records)},
		{"nfdump -v nfdump", v["nfdump"], strings.TrimSuffix(strings.SplitN(rep.NfdVersion, "(0x0", 2)[1], ")")},
		{"nfdump -I Ident", stat["Ident"], rep.Ident},
		{"nfdump -I Flows", stat["Flows"], fmt.Sprint(rep.Stat.Flows)},
		{"nfdump -I Flows_tcp", stat["Flows_tcp"], fmt.Sprint(rep.Stat.FlowsTCP)},
		{"nfdump -I Flows_udp", stat["Flows_udp"], fmt.Sprint(rep.Stat.FlowsUDP)},
		{"nfdump -I Flows_icmp", stat["Flows_icmp"], fmt.Sprint(rep.Stat.FlowsICMP)},
		{"nfdump -I Flows_other", stat["Flows_other"], fmt.Sprint(rep.Stat.FlowsOther)},
		{"nfdump -I Packets", stat["Packets"], fmt.Sprint(rep.Stat.Packets)},
		{"nfdump -I Packets_tcp", stat["Packets_tcp"], fmt.Sprint(rep.Stat.PacketsTCP)},
		{"nfdump -I Packets_udp", stat["Packets_udp"], fmt.Sprint(rep.Stat.PacketsUDP)},
		{"nfdump -I Packets_icmp", stat["Packets_icmp"], fmt.Sprint(rep.Stat.PacketsICMP)},
		{"nfdump -I Packets_other", stat["Packets_other"], fmt.Sprint(rep.Stat.PacketsOther)},
		{"nfdump -I Bytes", stat["Bytes"], fmt.Sprint(rep.Stat.Bytes)},
		{"nfdump -I Bytes_tcp", stat["Bytes_tcp"], fmt.Sprint(rep.Stat.BytesTCP)},
		{"nfdump -I Bytes_udp", stat["Bytes_udp"], fmt.Sprint(rep.Stat.BytesUDP)},
		{"nfdump -I Bytes_icmp", stat["Bytes_icmp"], fmt.Sprint(rep.Stat.BytesICMP)},
		{"nfdump -I Bytes_other", stat["Bytes_other"], fmt.Sprint(rep.Stat.BytesOther)},
		{"nfdump -I First", stat["First"], fmt.Sprint(rep.Stat.FirstSeenMs / 1000)},
		{"nfdump -I Last", stat["Last"], fmt.Sprint(rep.Stat.LastSeenMs / 1000)},
		{"nfdump -I msec_first", stat["msec_first"], fmt.Sprint(rep.Stat.FirstSeenMs % 1000)},
		{"nfdump -I msec_last", stat["msec_last"], fmt.Sprint(rep.Stat.LastSeenMs % 1000)},
		{"nfdump -I Sequence failures", stat["Sequence failures"], fmt.Sprint(rep.SequenceFailures)},
	}
	for _, c := range checks {
		if c.nfdump != c.netdumper {
			t.Errorf("%s: nfdump %q, netdumper %q", c.what, c.nfdump, c.netdumper)
		}
	}
	if !rep.StatMatches {
		t.Errorf("the recount disagrees with the stat record: %+v vs %+v", rep.Recount, rep.Stat)
	}

	// Flow records and usernames, counted from nfdump's own output.
	unames := runNfdump(t, "UTC", "-q", "-r", path, "-o", "fmt:%uname")
	lines := strings.Split(strings.TrimSuffix(unames, "\n"), "\n")
	if rep.FlowRecords == 0 {
		lines = nil
	}
	nonEmpty := 0
	for _, l := range lines {
		if l != "<empty>" {
			nonEmpty++
		}
	}
	if len(lines) != rep.FlowRecords || nonEmpty != rep.NonEmptyUser {
		t.Errorf("nfdump prints %d flows, %d with a username; inspect says %d flow records, %d with a non-empty username",
			len(lines), nonEmpty, rep.FlowRecords, rep.NonEmptyUser)
	}
	if rep.WithUsername < rep.NonEmptyUser {
		t.Errorf("%d records with a username element but %d non-empty ones", rep.WithUsername, rep.NonEmptyUser)
	}

	// The human-readable form carries the same figures.
	human := runNetdumper(t, "UTC", "inspect", path)
	hv := keyValues(human.stdout)
	if human.code != 0 || !strings.HasPrefix(hv["Flows"], strconv.FormatUint(rep.Stat.Flows, 10)+" ") ||
		!strings.HasPrefix(hv["Usernames"], strconv.Itoa(rep.WithUsername)+" of "+strconv.Itoa(rep.FlowRecords)) {
		t.Errorf("human output does not match the JSON:\n%s", human.stdout)
	}
}

func TestInspectFixtures(t *testing.T) {
	nfdumpBin(t)
	for _, path := range fixtureFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) { checkInspect(t, path) })
	}
}

func TestInspectGeneratedFixtures(t *testing.T) {
	for _, path := range generatedFixtures(t) {
		t.Run(filepath.Base(path), func(t *testing.T) { checkInspect(t, path) })
	}
}

// TestInspectSeveral checks one JSON object per file and the exit status
// when one file of several is bad.
func TestInspectSeveral(t *testing.T) {
	files := fixtureFiles(t)[:2]
	bad := filepath.Join(t.TempDir(), "nosuch.nf")
	got := runNetdumper(t, "UTC", "inspect", "--json", files[0], bad, files[1])
	if got.code != 1 || !strings.Contains(got.stderr, "nosuch.nf") {
		t.Errorf("exit %d, stderr %q; want 1 naming nosuch.nf", got.code, got.stderr)
	}
	// One object per file, the bad one's with its error only (as enrich
	// --json prints failures).
	lines := strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines, want 3:\n%s", len(lines), got.stdout)
	}
	for i, l := range lines {
		var rep fileReport
		if err := json.Unmarshal([]byte(l), &rep); err != nil || rep.File != []string{files[0], bad, files[1]}[i] {
			t.Errorf("line %d: %v, file %q", i, err, rep.File)
		}
		if (rep.Error != "") != (i == 1) {
			t.Errorf("line %d: error %q", i, rep.Error)
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil || len(m) != 2 || !strings.Contains(m["error"].(string), "no such file") {
		t.Errorf("the unreadable file's object %s, want only file and error", lines[1])
	}
}

// TestInspectCorruptBlocks: for a file whose read stops at a corrupt
// block, the block count says what was read and what the header
// announces, rather than a total smaller than its parts.
func TestInspectCorruptBlocks(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixtures.Dir(t), "v9-multiblock.lzo.nf"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 2000; i < 2010; i++ {
		b[i] = 0xff // inside the first data block
	}
	path := filepath.Join(t.TempDir(), "nfcapd.202311142210")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runNetdumper(t, "UTC", "inspect", path)
	kv := keyValues(r.stdout)
	if r.code != exitFailure || kv["Error"] == "" {
		t.Fatalf("exit %d, want %d with an Error line:\n%s%s", r.code, exitFailure, r.stdout, r.stderr)
	}
	if want := "1 read before the error (the header announces 2 data, 1 appendix)"; kv["Blocks"] != want {
		t.Errorf("Blocks: %q, want %q", kv["Blocks"], want)
	}
}
