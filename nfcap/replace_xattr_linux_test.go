package nfcap_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netdumper/netdumper/nfcap"
)

// posixACL encodes a POSIX access ACL as the kernel stores it in
// system.posix_acl_access: version 2, then (tag, perm, id) entries.
func posixACL(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

// TestRewriteFileKeepsXattrs checks that the rewritten file keeps the
// original's extended attributes: a POSIX ACL that lets the collector's
// readers in, and user attributes (backup or indexing tools).
func TestRewriteFileKeepsXattrs(t *testing.T) {
	const undefinedID = 0xffffffff
	acl := posixACL(
		[3]uint32{0x01, 6, undefinedID}, // ACL_USER_OBJ rw-
		[3]uint32{0x02, 4, 65534},       // ACL_USER nobody r--
		[3]uint32{0x04, 4, undefinedID}, // ACL_GROUP_OBJ r--
		[3]uint32{0x10, 4, undefinedID}, // ACL_MASK r--
		[3]uint32{0x20, 0, undefinedID}, // ACL_OTHER ---
	)
	tests := []struct {
		name  string
		attrs map[string][]byte
	}{
		{name: "user attribute", attrs: map[string][]byte{"user.netdumper.test": []byte("kept")}},
		{name: "posix acl", attrs: map[string][]byte{"system.posix_acl_access": acl}},
		{name: "both", attrs: map[string][]byte{"user.a": []byte("1"), "user.b": {}, "system.posix_acl_access": acl}},
	}
	label := func(*nfcap.Flow) (string, bool) { return "sshd", true }
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := copyFixture(t, "v9-mixed.lz4.nf", dir, "nfcapd.202311142210", 0o640)
			for k, v := range tc.attrs {
				if err := unix.Setxattr(p, k, v, 0); err != nil {
					if errors.Is(err, unix.ENOTSUP) {
						t.Skipf("file system of %s: %v", dir, err)
					}
					t.Fatalf("setxattr %s: %v", k, err)
				}
			}
			want := map[string][]byte{}
			for k := range tc.attrs {
				want[k] = getXattr(t, p, k)
			}
			if _, err := nfcap.RewriteFile(context.Background(), p, label, nfcap.RewriteOptions{}); err != nil {
				t.Fatal(err)
			}
			for k, v := range want {
				if got := getXattr(t, p, k); !bytes.Equal(got, v) {
					t.Errorf("%s after the rewrite: %x, want %x", k, got, v)
				}
			}
			onlyFile(t, dir, "nfcapd.202311142210")
		})
	}
}

func getXattr(t *testing.T, path, name string) []byte {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		t.Fatalf("getxattr %s: %v", name, err)
		return nil
	}
	return buf[:n]
}
