package ebpf

import (
	"strings"
	"testing"
)

func TestFindCgroup2(t *testing.T) {
	for _, tc := range []struct {
		name, mountinfo, want string
	}{
		{"hybrid (v1 controllers, v2 at unified)", `25 30 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 25 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`, "/sys/fs/cgroup/unified"},
		{"unified", `29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
`, "/sys/fs/cgroup"},
		{"subtree mount skipped", `40 23 0:26 /system.slice /mnt/sub rw - cgroup2 cgroup2 rw
41 23 0:26 / /mnt/root\040dir rw - cgroup2 cgroup2 rw
`, "/mnt/root dir"},
		{"none", `22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
`, ""},
		{"malformed lines", "garbage\n1 2 3\n- - -\n\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findCgroup2(strings.NewReader(tc.mountinfo))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("findCgroup2 = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`/plain`, "/plain"},
		{`/a\040b`, "/a b"},
		{`/tab\011x\134y`, "/tab\tx\\y"},
		{`/short\04`, `/short\04`},
		{`/bad\999`, `/bad\999`},
		{`\`, `\`},
	} {
		if got := unescapeMountinfo(tc.in); got != tc.want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
