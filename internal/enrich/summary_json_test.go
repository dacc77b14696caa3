package enrich

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netdumper/netdumper/nfcap"
)

// TestSummaryJSONSnakeCase: every key of a summary's JSON is snake_case,
// the rewrite's counters included, and carries its value.
func TestSummaryJSONSnakeCase(t *testing.T) {
	s := Summary{Path: "/x/nfcapd.202311142210", First: time.Unix(1700000000, 0).UTC(), Last: time.Unix(1700000300, 0).UTC(),
		Flows: 10, Exact: 1, Listener: 2, Wildcard: 3, Unmatched: 4,
		Written:  nfcap.RewriteStats{Blocks: 1, Records: 12, Flows: 10, Inserted: 5, Replaced: 1, Kept: 2, Placeholder: 0, Unlabelled: 2, TooLarge: 7},
		Bindings: 9, Elapsed: time.Second}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	var check func(prefix string, m map[string]any)
	check = func(prefix string, m map[string]any) {
		for k, v := range m {
			if !snake.MatchString(k) {
				t.Errorf("key %s%s is not snake_case", prefix, k)
			}
			if sub, ok := v.(map[string]any); ok {
				check(prefix+k+".", sub)
			}
		}
	}
	check("", got)
	written, _ := got["written"].(map[string]any)
	want := map[string]any{"inserted": 5.0, "replaced": 1.0, "kept": 2.0, "too_large": 7.0, "unlabelled": 2.0, "flows": 10.0}
	for k, v := range want {
		if written[k] != v {
			t.Errorf("written.%s = %v, want %v (written %v)", k, written[k], v, written)
		}
	}
	if got["path"] != s.Path || got["matched_wildcard"] != 3.0 || got["first"] != "2023-11-14T22:13:20Z" {
		t.Errorf("summary fields: %s", b)
	}
}

func TestSnakeCase(t *testing.T) {
	got := map[string]string{}
	for _, in := range []string{"Blocks", "TooLarge", "Unlabelled", "ID", "HTTPStatus", "Port80Open", "Elapsed"} {
		got[in] = snakeCase(in)
	}
	want := map[string]string{"Blocks": "blocks", "TooLarge": "too_large", "Unlabelled": "unlabelled", "ID": "id",
		"HTTPStatus": "http_status", "Port80Open": "port80_open", "Elapsed": "elapsed"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("snakeCase (-want +got):\n%s", d)
	}
}
