package enrich

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"unicode"
)

// MarshalJSON encodes the summary with snake_case keys throughout, the
// counters of the rewrite (nfcap.RewriteStats, which has no JSON tags)
// included: "written": {"inserted": ..., "too_large": ...}.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary // the same fields, without this method
	written, err := snakeCaseObject(s.Written)
	if err != nil {
		return nil, fmt.Errorf("summary of %s: %w", s.Path, err)
	}
	return json.Marshal(struct {
		plain
		Written json.RawMessage `json:"written"`
	}{plain(s), written})
}

// snakeCaseObject encodes the exported fields of the struct v as a JSON
// object, in field order, each under its name in snake_case.
func snakeCaseObject(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%T is not a struct", v)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		val, err := json.Marshal(rv.Field(i).Interface())
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		if n++; n > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", snakeCase(f.Name))
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// snakeCase turns a Go field name into snake_case: TooLarge -> too_large.
func snakeCase(name string) string {
	var b []rune
	rs := []rune(name)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]) ||
				(i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
				b = append(b, '_')
			}
			r = unicode.ToLower(r)
		}
		b = append(b, r)
	}
	return string(b)
}
