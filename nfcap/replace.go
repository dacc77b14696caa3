package nfcap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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

// RemoveStaleTemps removes the temporary files ReplaceFile left in dir (not
// in its subdirectories) when its process was killed: those not modified
// for at least age, so that a rewrite still writing one keeps it. It
// returns the paths it removed; a file that cannot be removed is an error
// naming it, and the others are still tried.
func RemoveStaleTemps(dir string, age time.Duration) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		if !e.Type().IsRegular() || !IsTempFile(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < age {
			continue // gone meanwhile, or still being written
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing stale temporary file: %w", err))
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// CheckReplaceable refuses files that must not be rewritten in place:
// nfcapd's open file (nfcapd.current.*), also when reached through a
// symbolic link, and anything but a regular file.
func CheckReplaceable(path string) error {
	if err := checkNotCurrent(path, path); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	if err := checkNotCurrent(path, real); err != nil {
		return err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	return nil
}

// checkNotCurrent refuses name if it is nfcapd's open file; path is what
// the caller asked for.
func checkNotCurrent(path, name string) error {
	if !strings.HasPrefix(filepath.Base(name), "nfcapd.current") {
		return nil
	}
	if name != path {
		return fmt.Errorf("%s: it leads to %s: %w; it is renamed when nfcapd rotates it", path, name, ErrFileBusy)
	}
	return fmt.Errorf("%s: %w; it is renamed when nfcapd rotates it", path, ErrFileBusy)
}

// ReplaceFile replaces the file at path with what write puts into a
// temporary file in the same directory. Only a file the caller may write
// and, unless it is root, owns is replaced. The temporary file gets the
// original's permissions, group (and owner, when running as root; a user
// who is not a member of the group cannot give it) and extended attributes
// (POSIX ACL, user.*; security.* and trusted.* when allowed), is synced, and is
// renamed over the original, and the directory is synced. If write fails,
// ctx is cancelled, or the original changes in the meantime, the temporary
// file is removed and the original is left untouched. A crash at any
// moment leaves either the complete old file or the complete new one.
func ReplaceFile(ctx context.Context, path string, write func(ctx context.Context, tmp *os.File) error) error {
	real, before, err := replaceable(path)
	if err != nil {
		return err
	}
	return replaceFile(ctx, path, real, before, write)
}

// groupRefused reports whether a non-root chown to the original's group
// failed for want of the right (not a member) or of support (some NFS and
// CIFS mounts): the file then keeps the user's group, as it always did.
func groupRefused(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP)
}

// replaceable checks path with CheckReplaceable and returns the file it
// leads to and that file's state, the baseline against which a change
// during the rewrite is detected.
func replaceable(path string) (string, os.FileInfo, error) {
	if err := CheckReplaceable(path); err != nil {
		return "", nil, err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", nil, err
	}
	before, err := os.Stat(real)
	if err != nil {
		return "", nil, err
	}
	if err := checkMayReplace(path, before); err != nil {
		return "", nil, err
	}
	return real, before, nil
}

// checkMayReplace refuses a replacement the caller has no right to, even
// though write access to the directory would let the rename through: a
// file it may not write (read-only, on a read-only mount), and, unless it
// is root, a file owned by someone else, which the replacement would
// silently give to the caller. The errors match fs.ErrPermission.
func checkMayReplace(path string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	euid := os.Geteuid()
	if euid != 0 && int(st.Uid) != euid {
		return fmt.Errorf("%s: %w: it belongs to uid %d, and replacing it as uid %d would make it yours; run as its owner or as root",
			path, fs.ErrPermission, st.Uid, euid)
	}
	if err := unix.Faccessat(unix.AT_FDCWD, path, unix.W_OK, unix.AT_EACCESS); err != nil {
		if errors.Is(err, syscall.EROFS) {
			return fmt.Errorf("%s: %w: read-only file system", path, fs.ErrPermission)
		}
		return fmt.Errorf("%s: %w: the file is not writable (mode %v); the rewrite replaces it, which needs write permission on it",
			path, fs.ErrPermission, fi.Mode().Perm())
	}
	return nil
}

// replaceFile is ReplaceFile for the file real (path resolved), whose
// state before anything was read from it is before.
func replaceFile(ctx context.Context, path, real string, before os.FileInfo, write func(ctx context.Context, tmp *os.File) error) error {
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
	if st, ok := before.Sys().(*syscall.Stat_t); ok {
		// Root gives the file its owner and group. Anyone else can give it
		// the group when they belong to it (the nfdump group of a
		// collector, say), which keeps the file readable by that group;
		// when they do not, the new file has their own group.
		uid := -1
		if os.Geteuid() == 0 {
			uid = int(st.Uid)
		}
		if err := tmp.Chown(uid, int(st.Gid)); err != nil && (uid >= 0 || !groupRefused(err)) {
			return fmt.Errorf("setting owner of %s: %w", tmp.Name(), err)
		}
	}
	// After the mode and owner: setting the ACL sets the group bits of the
	// mode, and a chown by root drops security.capability.
	if err := copyXattrs(real, tmp.Name()); err != nil {
		return err
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
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		return fmt.Errorf("replaced %s, but syncing its directory failed (a crash could still bring the old file back): %w", path, err)
	}
	return nil
}

// RewriteFile rewrites the nfdump file at path in place (through
// ReplaceFile), labelling its flows as Rewrite does. Files nfcapd is still
// writing and files that are not valid nfdump files are refused before
// anything is written. When no record needs a change (and the compression
// stays), the original is left as it was, modification time included, and
// the stats say Unchanged.
func RewriteFile(ctx context.Context, path string, label LabelFunc, opts RewriteOptions) (RewriteStats, error) {
	var st RewriteStats
	// The baseline is taken before the file is opened: a file replaced in
	// between is then seen as changed, never read as the old one and
	// renamed over the new one.
	real, before, err := replaceable(path)
	if err != nil {
		return st, err
	}
	// The file the baseline is of, not path again: a symlink pointed
	// elsewhere in between would have another file's records written
	// over this one, unseen by the final check (which looks at real).
	r, err := OpenFile(real, ReaderOptions{Name: path, Workers: opts.Workers})
	if err != nil {
		return st, err
	}
	defer r.Close()
	recompress := opts.Recompress && opts.Compression != r.Header().Compression
	err = replaceFile(ctx, path, real, before, func(ctx context.Context, tmp *os.File) error {
		var err error
		if st, err = Rewrite(ctx, r, tmp, label, opts); err != nil {
			return err
		}
		if st.Inserted+st.Replaced+st.Placeholder == 0 && !recompress {
			return errUnchanged
		}
		return nil
	})
	if errors.Is(err, errUnchanged) {
		st.Unchanged = true
		return st, nil
	}
	return st, err
}

// errUnchanged abandons a replacement whose result would hold the same
// records as the original.
var errUnchanged = errors.New("no record changed")
