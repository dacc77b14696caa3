// Package nfdir finds the flow files nfcapd writes: nfcapd.YYYYMMDDhhmm (or
// ...hhmmss with -t under 60 s), in a flat directory or in the
// subdirectory layouts of nfcapd -S (%Y/%m/%d, %Y/%m/%d/%H, ...). The file
// nfcapd is still writing (nfcapd.current.PID) and temporary files are
// never returned.
package nfdir

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Prefix is the name prefix of nfcapd's files.
const Prefix = "nfcapd."

// IsCurrent reports whether name is the file nfcapd is still writing.
func IsCurrent(name string) bool {
	return strings.HasPrefix(filepath.Base(name), Prefix+"current")
}

// ParseName returns the interval start encoded in an nfcapd file name, in
// loc (nfcapd names files in the collector's local time), and whether the
// name is an nfcapd rotated-file name.
func ParseName(name string, loc *time.Location) (time.Time, bool) {
	base := filepath.Base(name)
	if !strings.HasPrefix(base, Prefix) {
		return time.Time{}, false
	}
	ts := base[len(Prefix):]
	layout := ""
	switch len(ts) {
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return time.Time{}, false
	}
	for _, c := range ts {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	t, err := time.ParseInLocation(layout, ts, loc)
	return t, err == nil
}

// IsFlowFile reports whether name looks like a rotated nfcapd file.
func IsFlowFile(name string) bool {
	_, ok := ParseName(name, time.UTC)
	return ok
}

// File is one flow file found by Walk.
type File struct {
	Path string
	// Start is the interval start from the file name; zero when the file
	// was named explicitly and does not follow nfcapd's naming.
	Start time.Time
	Size  int64
}

// Walk calls fn for every flow file under roots, in lexical path order per
// root (which is time order for nfcapd's names and layouts). A root that is
// a file is passed on as it is, whatever its name, unless it is nfcapd's
// open file; a root that is a directory is searched recursively for
// rotated nfcapd files; links to such files count, symlinked directories
// are not followed.
func Walk(ctx context.Context, roots []string, fn func(File) error) error {
	for _, root := range roots {
		fi, err := os.Stat(root)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			if IsCurrent(root) {
				return fmt.Errorf("%s: nfcapd is still writing this file", root)
			}
			t, _ := ParseName(root, time.Local)
			if err := fn(File{Path: root, Start: t, Size: fi.Size()}); err != nil {
				return err
			}
			continue
		}
		var files []File
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if d.IsDir() {
				if p != root && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if IsCurrent(p) {
				return nil
			}
			t, ok := ParseName(p, time.Local)
			if !ok {
				return nil
			}
			info, err := d.Info()
			if d.Type()&fs.ModeSymlink != 0 { // a link to a file counts
				info, err = os.Stat(p)
			}
			if err != nil {
				return err
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			files = append(files, File{Path: p, Start: t, Size: info.Size()})
			return nil
		})
		if err != nil {
			return err
		}
		sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
		for _, f := range files {
			if err := fn(f); err != nil {
				return err
			}
		}
	}
	return nil
}
