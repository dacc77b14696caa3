// Package nfdir finds the flow files nfcapd writes: nfcapd.YYYYMMDDhhmm (or
// ...hhmmss with -t under 60 s), in a flat directory or in the
// subdirectory layouts of nfcapd -S (%Y/%m/%d, %Y/%m/%d/%H, ...). The file
// nfcapd is still writing (nfcapd.current.PID) and temporary files are
// never returned.
package nfdir

import (
	"context"
	"errors"
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
	// ModTime is the file's modification time when it was found.
	ModTime time.Time
}

// Walk calls fn for every flow file under roots, in lexical path order per
// root (which is time order for nfcapd's names and layouts). A root that is
// a file is passed on as it is, whatever its name, unless it is nfcapd's
// open file; a root that is a directory is searched recursively for
// rotated nfcapd files; links to such files count, symlinked directories
// are not followed.
//
// An entry below a root that cannot be read (a directory without
// permission, a dangling link) does not hide the others: Walk skips it,
// goes on, and returns the skipped entries at the end as *EntryError
// values (joined). A file that disappears during the search is skipped
// silently (nfexpire removing old files, say). A root that cannot be
// read, an error of fn, and the end of ctx stop Walk at once.
func Walk(ctx context.Context, roots []string, fn func(File) error) error {
	var skipped []error
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
			if err := fn(File{Path: root, Start: t, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
			continue
		}
		var files []File
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err != nil {
				if p == root {
					return err
				}
				skipped = append(skipped, &EntryError{Path: p, Err: err})
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
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
			link := d.Type()&fs.ModeSymlink != 0
			info, err := d.Info()
			if link { // a link to a file counts
				info, err = os.Stat(p)
			}
			switch {
			case err != nil && !link && errors.Is(err, fs.ErrNotExist):
				return nil // removed meanwhile
			case err != nil:
				skipped = append(skipped, &EntryError{Path: p, Err: err})
				return nil
			case !info.Mode().IsRegular():
				return nil
			}
			files = append(files, File{Path: p, Start: t, Size: info.Size(), ModTime: info.ModTime()})
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
	return errors.Join(skipped...)
}

// EntryError is an entry Walk skipped because it could not be read.
type EntryError struct {
	Path string
	Err  error
}

func (e *EntryError) Error() string {
	// The file system's errors name the path already.
	if msg := e.Err.Error(); strings.Contains(msg, e.Path) {
		return msg
	}
	return e.Path + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *EntryError) Unwrap() error { return e.Err }

// Skipped returns the entries a Walk error reports as skipped, or nil when
// err is not (only) about skipped entries, so that the caller knows
// whether the files it was given are all there were to find.
func Skipped(err error) []*EntryError {
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]*EntryError, 0, len(errs))
	for _, e := range errs {
		ee, ok := e.(*EntryError)
		if !ok {
			return nil
		}
		out = append(out, ee)
	}
	return out
}
