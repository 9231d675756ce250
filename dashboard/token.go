package dashboard

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenFileName is the file in shoald's data directory holding the token of
// a loopback dashboard started without --dashboard-token-file.
const TokenFileName = "dashboard-token"

// LocalToken returns the token of a loopback dashboard and the file it is
// kept in: <dataDir>/dashboard-token, made (mode 0600, 32 random bytes in
// hex) on first use and read afterwards, so a bookmark or a logged-in
// browser keeps working across restarts. Loopback is reachable by every
// local user, while the control socket the dashboard drives is guarded by
// its file permissions: the token keeps the dashboard to those who can
// read the data directory. A file that is not private to its owner is
// refused.
func LocalToken(dataDir string) (token, path string, err error) {
	if dataDir == "" {
		return "", "", errors.New("no data directory to keep the dashboard token in")
	}
	path = filepath.Join(dataDir, TokenFileName)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return "", "", err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", "", fmt.Errorf("%s is readable by other users (mode %v): run `chmod 600 %s`, or delete it to get a new token", path, fi.Mode().Perm(), path)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return "", "", fmt.Errorf("%s is empty: delete it to get a new token", path)
		}
		return token, path, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", err
	}
	token = hex.EncodeToString(raw[:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return "", "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return "", "", err
	}
	return token, path, nil
}
