package tracker

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestProcessName(t *testing.T) {
	tests := []struct {
		name, comm, exe, argv0, want string
	}{
		{"short comm kept", "python3", "/usr/bin/python3.11", "python3", "python3"},
		{"cut comm completed from exe", "systemd-resolve", "/usr/lib/systemd/systemd-resolved", "/lib/systemd/systemd-resolved", "systemd-resolved"},
		{"cut comm completed from argv0", "nd-test-server-", "/usr/bin/busybox", "/opt/nd-test-server-long", "nd-test-server-long"},
		{"exe preferred to argv0", "nd-test-server-", "/x/nd-test-server-long-name", "nd-test-server-other", "nd-test-server-long-name"},
		{"deleted exe", "nd-test-server-", "/x/nd-test-server-long-name (deleted)", "", "nd-test-server-long-name"},
		{"renamed by prctl", "nd-renamed-srv1", "/tmp/tracker.test", "/tmp/tracker.test", "nd-renamed-srv1"},
		{"no exe no args", "kworker/0:1-eve", "", "", "kworker/0:1-eve"},
		{"comm equal to base", "abcdefghijklmno", "/bin/abcdefghijklmno", "", "abcdefghijklmno"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := processName(tt.comm, tt.exe, tt.argv0); got != tt.want {
				t.Errorf("processName(%q, %q, %q) = %q, want %q", tt.comm, tt.exe, tt.argv0, got, tt.want)
			}
		})
	}
}

func TestContainerID(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, cgroup, want string
	}{
		{"docker systemd driver", "/system.slice/docker-" + id + ".scope", id},
		{"docker cgroupfs driver", "/docker/" + id, id},
		{"containerd CRI", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-" + id + ".scope", id},
		{"kubepods cgroupfs", "/kubepods/burstable/pod0a1b2c3d-0000-1111-2222-333344445555/" + id, id},
		{"crio", "/kubepods.slice/crio-" + id + ".scope", id},
		{"podman", "/machine.slice/libpod-" + id + ".scope/container", id},
		{"podman conmon is not a container", "/machine.slice/libpod-conmon-" + id + ".scope", ""},
		{"plain service", "/system.slice/ssh.service", ""},
		{"short hex", "/docker/0123456789ab", ""},
		{"upper-case hex is not an id", "/docker/" + "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := containerID(tt.cgroup); got != tt.want {
				t.Errorf("containerID(%q) = %q, want %q", tt.cgroup, got, tt.want)
			}
		})
	}
}

func TestPickCgroup(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"v2", "0::/system.slice/ssh.service\n", "/system.slice/ssh.service"},
		{"hybrid prefers unified", "12:pids:/user.slice\n1:name=systemd:/user.slice/x.scope\n0::/user.slice/x.scope\n", "/user.slice/x.scope"},
		{"v1 name=systemd", "5:memory:/docker/abc\n1:name=systemd:/docker/abc\n", "/docker/abc"},
		{"v1 first non-root", "5:memory:/\n4:cpu,cpuacct:/docker/abc\n", "/docker/abc"},
		{"malformed", "garbage\n", ""},
		{"hybrid with an empty unified hierarchy", "9:name=systemd:/docker/abc\n5:memory:/docker/abc\n0::/\n", "/docker/abc"},
		{"hybrid, v1 controllers only", "5:memory:/docker/abc\n1:name=systemd:/\n0::/\n", "/docker/abc"},
		{"everything at the root", "1:name=systemd:/\n0::/\n", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickCgroup(tt.data); got != tt.want {
				t.Errorf("pickCgroup(%q) = %q, want %q", tt.data, got, tt.want)
			}
		})
	}
}

func TestParsePasswd(t *testing.T) {
	data := "root:x:0:0:root:/root:/bin/bash\n# comment\nbad\nnouid:x:abc:0::/:\n+nis::::::\nalice:x:1000:1000::/home/alice:/bin/sh\ntoor:x:0:0::/:\n"
	want := map[uint32]string{0: "root", 1000: "alice"}
	if diff := cmp.Diff(want, parsePasswd([]byte(data))); diff != "" {
		t.Errorf("parsePasswd mismatch (-want +got):\n%s", diff)
	}
}
