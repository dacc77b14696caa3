package tracker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// SystemStateDir is the state directory of a tracker running as root.
const SystemStateDir = "/var/lib/netdumper"

// DaemonFile is the name of the file in the state directory where a
// running `netdumper serve` says how to reach it (see DaemonInfo).
const DaemonFile = "serve.json"

// DefaultStateDir returns the state directory `serve` and `enrich` use
// when none is given: SystemStateDir for root, else
// $XDG_STATE_HOME/netdumper, else ~/.local/state/netdumper.
func DefaultStateDir() (string, error) {
	return StateDirFor(os.Geteuid(), os.Getenv)
}

// StateDirFor is DefaultStateDir for the effective user id euid and the
// environment getenv.
func StateDirFor(euid int, getenv func(string) string) (string, error) {
	if euid == 0 {
		return SystemStateDir, nil
	}
	if x := getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "netdumper"), nil
	}
	home := getenv("HOME")
	if home == "" || !filepath.IsAbs(home) {
		return "", errors.New("no state directory: HOME is not set (give one with --state)")
	}
	return filepath.Join(home, ".local", "state", "netdumper"), nil
}

// DaemonInfo is what a running `netdumper serve` records in its state
// directory (DaemonFile) so that local readers, which cannot open the
// locked history store, can ask it over its API instead.
type DaemonInfo struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
	// API is the base URL of the daemon's HTTP API ("" when it has none).
	API string `json:"api,omitempty"`
	// TokenFile is the file holding the API's bearer token, if any (the
	// token itself is never written here). Like every path here it is
	// absolute, so that readers in any directory find it.
	TokenFile string `json:"token_file,omitempty"`
	// CertFile is the API's TLS certificate file (PEM) when it speaks
	// HTTPS: local readers trust exactly that certificate, whatever host
	// name API has (127.0.0.1 for a wildcard listen address, which the
	// host's certificate does not name).
	CertFile string `json:"cert_file,omitempty"`
}

// WriteDaemonInfo records info in dir, atomically.
func WriteDaemonInfo(dir string, info DaemonInfo) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("daemon info: %w", err)
	}
	path := filepath.Join(dir, DaemonFile)
	tmp, err := os.CreateTemp(dir, DaemonFile+".*")
	if err != nil {
		return fmt.Errorf("daemon info: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}

// ReadDaemonInfo reads what WriteDaemonInfo recorded in dir. The file may
// be stale (a daemon killed with -9 leaves it behind): check that PID
// still runs, or just try the API.
func ReadDaemonInfo(dir string) (DaemonInfo, error) {
	var info DaemonInfo
	path := filepath.Join(dir, DaemonFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("read daemon info: %w", err)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// RemoveDaemonInfo removes the file WriteDaemonInfo wrote (no error when
// it is already gone).
func RemoveDaemonInfo(dir string) error {
	err := os.Remove(filepath.Join(dir, DaemonFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove daemon info: %w", err)
	}
	return nil
}
