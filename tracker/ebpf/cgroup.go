package ebpf

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// maxMountinfoLines bounds the scan of /proc/self/mountinfo.
const maxMountinfoLines = 100000

// findCgroup2 returns the mount point of the root of a cgroup v2 hierarchy
// listed in a /proc/<pid>/mountinfo file ("" when there is none). A mount
// whose root is not "/" shows only a subtree and is skipped.
func findCgroup2(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 0; sc.Scan() && n < maxMountinfoLines; n++ {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		if fields[sep+1] == "cgroup2" && fields[3] == "/" {
			return unescapeMountinfo(fields[4]), nil
		}
	}
	return "", sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, ...) that
// the kernel writes in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
