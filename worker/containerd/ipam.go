package containerd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/errdefs"
)

// ipam hands out the addresses of the node-local subnet to tasks.
//
// Its state is a JSON file rewritten atomically (temp file, fsync, rename)
// under an exclusive flock, and read again for every operation, so several
// Executors on one DataDir (a restarted daemon beside a lingering one, the
// re-attach tests) and crashes at any point never hand one address to two
// tasks. Allocation walks forward from the last address handed out, so a
// freed address is reused only after the whole subnet has been cycled:
// a stale peer (ARP cache, a client of the old task) rarely meets a new task
// on the address it remembers.
type ipam struct {
	path   string
	lock   string
	prefix netip.Prefix
}

type ipamState struct {
	Subnet string `json:"subnet"`
	// Last is the last address handed out; the next search starts after it.
	Last string `json:"last,omitempty"`
	// Allocated maps a task ID to its address.
	Allocated map[string]string `json:"allocated"`
}

func newIPAM(dir string, prefix netip.Prefix) (*ipam, error) {
	p := &ipam{path: filepath.Join(dir, "ipam.json"), lock: filepath.Join(dir, "ipam.lock"), prefix: prefix}
	// A changed subnet invalidates the state only when nothing is allocated;
	// otherwise addresses of live tasks would be forgotten.
	err := p.update(func(s *ipamState) error {
		if s.Subnet == prefix.String() {
			return nil
		}
		if len(s.Allocated) > 0 && s.Subnet != "" {
			return errdefs.FailedPrecondition("ipam state %s is for subnet %s with %d addresses in use, but the subnet is now %s; remove the tasks first",
				p.path, s.Subnet, len(s.Allocated), prefix)
		}
		*s = ipamState{Subnet: prefix.String(), Allocated: map[string]string{}}
		return nil
	})
	return p, err
}

// gateway is the bridge's address: the first host address of the subnet.
func (p *ipam) gateway() netip.Addr { return p.prefix.Masked().Addr().Next() }

// Allocate returns taskID's address, handing out a new one if it has none.
// Asking again for the same task returns the same address, so a Prepare
// replayed after a crash does not leak one.
func (p *ipam) Allocate(taskID string) (netip.Addr, error) {
	var out netip.Addr
	err := p.update(func(s *ipamState) error {
		if a, ok := s.Allocated[taskID]; ok {
			out, _ = netip.ParseAddr(a)
			return nil
		}
		used := make(map[netip.Addr]bool, len(s.Allocated))
		for _, a := range s.Allocated {
			if ip, err := netip.ParseAddr(a); err == nil {
				used[ip] = true
			}
		}
		first := p.gateway().Next()
		last := lastHost(p.prefix)
		start := first
		if l, err := netip.ParseAddr(s.Last); err == nil && p.prefix.Contains(l) && l.Compare(first) >= 0 && l.Compare(last) < 0 {
			start = l.Next()
		}
		a := start
		for {
			if !used[a] {
				s.Allocated[taskID] = a.String()
				s.Last = a.String()
				out = a
				return nil
			}
			if a = a.Next(); a.Compare(last) > 0 {
				a = first
			}
			if a == start {
				return errdefs.Newf(errdefs.ErrResourceExhausted, "node-local subnet %s has no free address (%d in use)", p.prefix, len(used))
			}
		}
	})
	return out, err
}

// Release frees taskID's address; releasing an unknown task is no error.
func (p *ipam) Release(taskID string) error {
	return p.update(func(s *ipamState) error {
		delete(s.Allocated, taskID)
		return nil
	})
}

// Lookup returns taskID's address, if it has one.
func (p *ipam) Lookup(taskID string) (netip.Addr, bool, error) {
	var (
		out netip.Addr
		ok  bool
	)
	err := p.update(func(s *ipamState) error {
		var a string
		if a, ok = s.Allocated[taskID]; ok {
			out, _ = netip.ParseAddr(a)
		}
		return errNoChange
	})
	return out, ok, err
}

// errNoChange tells update not to write the state back.
var errNoChange = errors.New("no change")

// update runs fn on the current state under the lock and saves the result.
func (p *ipam) update(fn func(*ipamState) error) error {
	lf, err := os.OpenFile(p.lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("ipam lock: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("ipam lock %s: %w", p.lock, err)
	}
	defer unix.Flock(int(lf.Fd()), unix.LOCK_UN) //nolint:errcheck // closing the file unlocks too

	s := ipamState{Allocated: map[string]string{}}
	b, err := os.ReadFile(p.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("ipam state: %w", err)
	default:
		if err := json.Unmarshal(b, &s); err != nil {
			return errdefs.FailedPrecondition("ipam state %s is damaged (%v); remove the node's tasks and the file to start afresh", p.path, err)
		}
		if s.Allocated == nil {
			s.Allocated = map[string]string{}
		}
	}
	if err := fn(&s); err != nil {
		if errors.Is(err, errNoChange) {
			return nil
		}
		return err
	}
	out, err := json.MarshalIndent(&s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(p.path, out, 0o600)
}

// lastHost is the highest address of p below its broadcast address.
func lastHost(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	v-- // below broadcast
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new content, never a torn file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
