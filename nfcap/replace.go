package nfcap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrFileBusy means the file is still being written by nfcapd
// (nfcapd.current.*) and must not be touched.
var ErrFileBusy = errors.New("file is still being written by nfcapd")

// ErrFileChanged means the original changed while it was being rewritten;
// the rewrite was abandoned and the original left as it is.
var ErrFileChanged = errors.New("file changed while it was being rewritten")

// tempPattern names temporary files next to the target; the dot hides them
// from nfcapd's and nfdump's directory scans (-R and -M read nfcapd.* names).
func tempPattern(base string) string { return "." + base + ".netdumper-*.tmp" }

// IsTempFile reports whether name is a temporary file ReplaceFile creates,
// for example one left behind by a process killed in the middle of a
// rewrite.
func IsTempFile(name string) bool {
	b := filepath.Base(name)
	return strings.HasPrefix(b, ".") && strings.Contains(b, ".netdumper-") && strings.HasSuffix(b, ".tmp")
}

// CheckReplaceable refuses files that must not be rewritten in place:
// nfcapd's open file (nfcapd.current.*) and anything but a regular file.
func CheckReplaceable(path string) error {
	if strings.HasPrefix(filepath.Base(path), "nfcapd.current") {
		return fmt.Errorf("%s: %w; it is renamed when nfcapd rotates it", path, ErrFileBusy)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	return nil
}

// ReplaceFile replaces the file at path with what write puts into a
// temporary file in the same directory. The temporary file gets the
// original's permissions (and owner, when running as root), is synced,
// and is renamed over the original, and the directory is synced. If write
// fails, ctx is cancelled, or the original changes in the meantime, the
// temporary file is removed and the original is left untouched. A crash at
// any moment leaves either the complete old file or the complete new one.
func ReplaceFile(ctx context.Context, path string, write func(ctx context.Context, tmp *os.File) error) (err error) {
	if err := CheckReplaceable(path); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	before, err := os.Stat(real)
	if err != nil {
		return err
	}
	dir := filepath.Dir(real)
	tmp, err := os.CreateTemp(dir, tempPattern(filepath.Base(real)))
	if err != nil {
		return fmt.Errorf("creating temporary file next to %s: %w", path, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(ctx, tmp); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tmp.Chmod(before.Mode().Perm()); err != nil {
		return fmt.Errorf("setting mode of %s: %w", tmp.Name(), err)
	}
	if st, ok := before.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("setting owner of %s: %w", tmp.Name(), err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	after, err := os.Stat(real)
	if err != nil {
		return err
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) || !os.SameFile(before, after) {
		return fmt.Errorf("%s: %w (size %d -> %d)", path, ErrFileChanged, before.Size(), after.Size())
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), real); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	committed = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// RewriteFile rewrites the nfdump file at path in place (through
// ReplaceFile), labelling its flows as Rewrite does. Files nfcapd is still
// writing and files that are not valid nfdump files are refused before
// anything is written.
func RewriteFile(ctx context.Context, path string, label LabelFunc, opts RewriteOptions) (RewriteStats, error) {
	var st RewriteStats
	if err := CheckReplaceable(path); err != nil {
		return st, err
	}
	r, err := OpenFile(path, ReaderOptions{Workers: opts.Workers})
	if err != nil {
		return st, err
	}
	defer r.Close()
	err = ReplaceFile(ctx, path, func(ctx context.Context, tmp *os.File) error {
		var err error
		st, err = Rewrite(ctx, r, tmp, label, opts)
		return err
	})
	return st, err
}
