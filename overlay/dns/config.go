package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	mdns "github.com/miekg/dns"
)

// Resolver answers the names of the cluster for a task. Resolve gets the
// asking task's ID and the queried name, lowercased, without trailing dot
// ("web", "tasks.web"). known false sends the query upstream; known true
// with no addrs answers "no record" (a service with no serving task).
// Implementations must be safe for concurrent use and must not block.
type Resolver interface {
	Resolve(taskID, name string) (addrs []netip.Addr, known bool)
}

// MaxTTL is the largest TTL the server gives: answers must not outlive a
// task by more than this.
const MaxTTL = 5

// Config configures a Server.
type Config struct {
	// Resolver answers cluster names. Required.
	Resolver Resolver
	// Upstreams are the resolvers unknown names go to, "IP" or "IP:port"
	// (port 53 by default). Empty: the nameservers of ResolvConf that are
	// not loopback addresses (those would point into the daemon's own
	// namespace). When there is none, unknown names get SERVFAIL at once.
	Upstreams []string
	// ResolvConf is read when Upstreams is empty. Default /etc/resolv.conf.
	ResolvConf string
	// TTL of the answers, in seconds. Default 5, at most MaxTTL.
	TTL uint32
	// ForwardTimeout bounds a forwarded query over all upstreams.
	// Default 2s.
	ForwardTimeout time.Duration
	// MaxInflight bounds the queries in flight per task. Default 64.
	MaxInflight int
	// Log receives errors and debug events. Default: discarded.
	Log *slog.Logger
}

// validate checks c and fills the defaults.
func (c *Config) validate() error {
	if c.Resolver == nil {
		return errors.New("dns: Config.Resolver is nil: give the server a Resolver")
	}
	if c.TTL == 0 {
		c.TTL = MaxTTL
	}
	if c.TTL > MaxTTL {
		return fmt.Errorf("dns: Config.TTL %d is over %d s: answers must not outlive a task by more than %d s", c.TTL, MaxTTL, MaxTTL)
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = 2 * time.Second
	}
	if c.ForwardTimeout < 0 {
		return fmt.Errorf("dns: Config.ForwardTimeout %v is negative", c.ForwardTimeout)
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 64
	}
	if c.MaxInflight < 0 {
		return fmt.Errorf("dns: Config.MaxInflight %d is negative", c.MaxInflight)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.ResolvConf == "" {
		c.ResolvConf = "/etc/resolv.conf"
	}
	ups := c.Upstreams
	if len(ups) == 0 {
		var err error
		if ups, err = resolvConfUpstreams(c.ResolvConf); err != nil {
			c.Log.Warn("dns: no upstream resolvers: unknown names will get SERVFAIL", "resolv_conf", c.ResolvConf, "err", err)
		}
	}
	norm := make([]string, 0, len(ups))
	for _, u := range ups {
		hp, err := hostPort(u)
		if err != nil {
			return fmt.Errorf("dns: upstream %q: %w: give IP or IP:port", u, err)
		}
		norm = append(norm, hp)
	}
	c.Upstreams = norm
	return nil
}

// hostPort turns "IP" or "IP:port" into "IP:port".
func hostPort(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", err
	}
	return netip.AddrPortFrom(a, 53).String(), nil
}

// resolvConfUpstreams returns the non-loopback nameservers of a
// resolv.conf file.
func resolvConfUpstreams(path string) ([]string, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	cc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range cc.Servers {
		ip := net.ParseIP(s)
		if ip == nil || ip.IsLoopback() {
			continue
		}
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no non-loopback nameserver in %s", path)
	}
	return out, nil
}
