package enrich

import (
	"strings"
	"testing"
)

func TestTemplate(t *testing.T) {
	f := &LabelFields{Process: "nginx", PID: 812, User: "www-data", UID: 33, Exe: "/usr/sbin/nginx",
		Container: "3f2a", Host: "web1", Service: "https"}
	tests := []struct{ tmpl, want string }{
		{"{process}", "nginx"},
		{"{pid}/{process}", "812/nginx"},
		{"{user}({uid})@{host}", "www-data(33)@web1"},
		{"{exe} {container}", "/usr/sbin/nginx 3f2a"},
		{"{service}***", "https***"},
		{"{{literal}}", "{literal}"},
	}
	for _, tc := range tests {
		tp, err := ParseTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		if got := string(tp.Append(nil, f)); got != tc.want {
			t.Errorf("%q -> %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	for _, bad := range []struct{ tmpl, msg string }{
		{"{proc}", "unknown field {proc}"},
		{"{process", "unclosed '{' at offset 0"},
		{"x}", "unmatched '}' at offset 1"},
		{"", "is empty"},
		{"  ", "is empty"},
	} {
		_, err := ParseTemplate(bad.tmpl)
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%q: err %v, want %q", bad.tmpl, err, bad.msg)
		}
	}
	tp, _ := ParseTemplate("{service}-x")
	if !tp.Uses("service") || tp.Uses("pid") {
		t.Error("Uses")
	}
}
