package tracker

import (
	"bufio"
	"bytes"
	"os"
	"os/user"
	"strconv"
	"sync"
	"time"
)

// userNames maps uids to user names from a passwd file, re-read when the
// file changes, with os/user as the fallback for uids the file does not
// name (NSS sources when built with cgo). Unknown uids are shown as
// numbers. It is safe for concurrent use.
type userNames struct {
	file string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	checked time.Time
	names   map[uint32]string
}

func newUserNames(file string) *userNames {
	if file == "" {
		file = "/etc/passwd"
	}
	return &userNames{file: file, names: map[uint32]string{}}
}

// passwdCheckInterval bounds how often the passwd file is stat'ed.
const passwdCheckInterval = 5 * time.Second

// name returns the user name of uid.
func (u *userNames) name(uid uint32) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if now := time.Now(); now.Sub(u.checked) >= passwdCheckInterval {
		u.checked = now
		u.reload()
	}
	if n, ok := u.names[uid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(uid), 10)
	if usr, err := user.LookupId(n); err == nil && usr.Username != "" {
		n = usr.Username
	}
	u.names[uid] = n
	return n
}

// reload re-reads the passwd file when its size or mtime changed.
func (u *userNames) reload() {
	fi, err := os.Stat(u.file)
	if err != nil {
		return
	}
	if fi.ModTime().Equal(u.modTime) && fi.Size() == u.size {
		return
	}
	data, err := os.ReadFile(u.file)
	if err != nil {
		return
	}
	u.modTime, u.size = fi.ModTime(), fi.Size()
	u.names = parsePasswd(data)
}

// parsePasswd parses passwd(5) lines "name:pw:uid:gid:gecos:home:shell";
// malformed lines are skipped. The first name of a uid wins.
func parsePasswd(data []byte) map[uint32]string {
	names := map[uint32]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		f := bytes.SplitN(sc.Bytes(), []byte(":"), 4)
		if len(f) < 4 || len(f[0]) == 0 || f[0][0] == '#' || f[0][0] == '+' || f[0][0] == '-' {
			continue
		}
		uid, err := strconv.ParseUint(string(f[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(uid)]; !dup {
			names[uint32(uid)] = string(f[0])
		}
	}
	return names
}
