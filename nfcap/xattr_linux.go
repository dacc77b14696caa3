package nfcap

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// copyXattrs gives the file dst the extended attributes of the file src:
// its POSIX ACL (system.posix_acl_access), which may be what lets the
// collector's readers in, and user attributes. Attributes only a
// privileged process may set (security.*, trusted.*) are skipped when
// the caller may not; the new file then has what the system gives new
// files. A file system without extended attributes has nothing to copy.
func copyXattrs(src, dst string) error {
	names, err := listXattrs(src)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return fmt.Errorf("listing extended attributes of %s: %w", src, err)
	}
	for _, name := range names {
		val, err := getXattr(src, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("reading extended attribute %s of %s: %w", name, src, err)
		}
		if err := unix.Setxattr(dst, name, val, 0); err != nil {
			privileged := !strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "system.posix_acl_")
			if privileged && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOTSUP)) {
				continue
			}
			return fmt.Errorf("copying extended attribute %s to %s: %w", name, dst, err)
		}
	}
	return nil
}

// listXattrs returns the names of the extended attributes of path.
func listXattrs(path string) ([]string, error) {
	buf, err := readXattr(func(b []byte) (int, error) { return unix.Listxattr(path, b) })
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range bytes.Split(buf, []byte{0}) {
		if len(n) > 0 {
			names = append(names, string(n))
		}
	}
	return names, nil
}

// getXattr returns the value of the extended attribute name of path.
func getXattr(path, name string) ([]byte, error) {
	return readXattr(func(b []byte) (int, error) { return unix.Getxattr(path, name, b) })
}

// readXattr calls get first for the size, then for the data, again if the
// data grew in between (a few times at most).
func readXattr(get func([]byte) (int, error)) ([]byte, error) {
	for range 4 {
		n, err := get(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return []byte{}, nil
		}
		buf := make([]byte, n)
		n, err = get(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, unix.ERANGE
}
