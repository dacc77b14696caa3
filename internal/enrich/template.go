package enrich

import (
	"fmt"
	"strconv"
	"strings"
)

// LabelFields are the values a label template can use.
type LabelFields struct {
	Process   string
	PID       int32
	User      string
	UID       uint32
	Exe       string
	Container string
	Host      string
	Service   string
}

type fieldID uint8

const (
	fieldLiteral fieldID = iota
	fieldProcess
	fieldPID
	fieldUser
	fieldUID
	fieldExe
	fieldContainer
	fieldHost
	fieldService
)

var fieldNames = map[string]fieldID{
	"process":   fieldProcess,
	"pid":       fieldPID,
	"user":      fieldUser,
	"uid":       fieldUID,
	"exe":       fieldExe,
	"container": fieldContainer,
	"host":      fieldHost,
	"service":   fieldService,
}

// FieldNames lists the template fields, for help texts.
const FieldNames = "{process} {pid} {user} {uid} {exe} {container} {host} {service}"

type segment struct {
	id  fieldID
	lit string
}

// Template is a compiled label template such as "{process}" or
// "{pid}/{process}@{host}". Text outside braces is copied; "{{" and "}}"
// stand for literal braces.
type Template struct {
	src  string
	segs []segment
}

// ParseTemplate compiles s. An empty (or blank) template, unknown field
// names and unbalanced braces are errors naming the offending text.
func ParseTemplate(s string) (*Template, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("label template %q is empty: it would label nothing", s)
	}
	t := &Template{src: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.segs = append(t.segs, segment{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("label template %q: unclosed '{' at offset %d", s, i)
			}
			name := s[i+1 : i+end]
			id, ok := fieldNames[name]
			if !ok {
				return nil, fmt.Errorf("label template %q: unknown field {%s} (known: %s)", s, name, FieldNames)
			}
			flush()
			t.segs = append(t.segs, segment{id: id})
			i += end
		case c == '}':
			return nil, fmt.Errorf("label template %q: unmatched '}' at offset %d", s, i)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// String returns the template source.
func (t *Template) String() string { return t.src }

// Uses reports whether the template refers to field name (without braces).
func (t *Template) Uses(name string) bool {
	id := fieldNames[name]
	for _, s := range t.segs {
		if s.id == id && id != fieldLiteral {
			return true
		}
	}
	return false
}

// Append appends the template expanded with f to dst.
func (t *Template) Append(dst []byte, f *LabelFields) []byte {
	for _, s := range t.segs {
		switch s.id {
		case fieldLiteral:
			dst = append(dst, s.lit...)
		case fieldProcess:
			dst = append(dst, f.Process...)
		case fieldPID:
			dst = strconv.AppendInt(dst, int64(f.PID), 10)
		case fieldUser:
			dst = append(dst, f.User...)
		case fieldUID:
			dst = strconv.AppendUint(dst, uint64(f.UID), 10)
		case fieldExe:
			dst = append(dst, f.Exe...)
		case fieldContainer:
			dst = append(dst, f.Container...)
		case fieldHost:
			dst = append(dst, f.Host...)
		case fieldService:
			dst = append(dst, f.Service...)
		}
	}
	return dst
}
