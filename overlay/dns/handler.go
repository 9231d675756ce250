package dns

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// serveDNS answers one query of the task. The query's slot is given back
// before the reply is written, so a client that sends its next query as
// soon as it has the answer finds the slot free.
func (t *task) serveDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	select {
	case t.inflight <- struct{}{}:
	default:
		t.srv.cfg.Log.Debug("dns: too many queries in flight, SERVFAIL", "task", t.id)
		reply(w, new(mdns.Msg).SetRcode(r, mdns.RcodeServerFailure))
		return
	}
	m := t.respond(w, r)
	<-t.inflight
	reply(w, m)
}

// respond builds the reply to one query.
func (t *task) respond(w mdns.ResponseWriter, r *mdns.Msg) *mdns.Msg {
	if r.Opcode != mdns.OpcodeQuery {
		return new(mdns.Msg).SetRcode(r, mdns.RcodeNotImplemented)
	}
	if len(r.Question) != 1 {
		return new(mdns.Msg).SetRcode(r, mdns.RcodeFormatError)
	}
	q := r.Question[0]
	if q.Qclass == mdns.ClassINET {
		name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
		if addrs, known := t.srv.cfg.Resolver.Resolve(t.id, name); known {
			return t.srv.answer(r, w, addrs)
		}
	}
	return t.srv.forward(r, w)
}

// answer builds the reply for a cluster name: A records for an A (or ANY)
// query, shuffled; no record otherwise.
func (s *Server) answer(r *mdns.Msg, w mdns.ResponseWriter, addrs []netip.Addr) *mdns.Msg {
	m := new(mdns.Msg).SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	q := r.Question[0]
	if q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY {
		for _, a := range addrs {
			if !a.Is4() && !a.Is4In6() {
				continue
			}
			m.Answer = append(m.Answer, &mdns.A{
				Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: s.cfg.TTL},
				A:   net.IP(a.Unmap().AsSlice()),
			})
		}
		rand.Shuffle(len(m.Answer), func(i, j int) { m.Answer[i], m.Answer[j] = m.Answer[j], m.Answer[i] })
	}
	m.Truncate(maxSize(r, w))
	return m
}

// forward sends r to the upstreams in turn, from the daemon's namespace,
// over the protocol it came on, within ForwardTimeout overall.
func (s *Server) forward(r *mdns.Msg, w mdns.ResponseWriter) *mdns.Msg {
	if len(s.cfg.Upstreams) == 0 {
		return servfail(r)
	}
	proto := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ForwardTimeout)
	defer cancel()
	for _, up := range s.cfg.Upstreams {
		deadline, _ := ctx.Deadline()
		c := &mdns.Client{Net: proto, Timeout: time.Until(deadline)}
		if proto == "udp" {
			c.UDPSize = uint16(maxSize(r, w))
		}
		resp, _, err := c.ExchangeContext(ctx, r, up)
		if err == nil && resp != nil {
			resp.Id = r.Id
			return resp
		}
		s.cfg.Log.Debug("dns: upstream failed", "upstream", up, "name", r.Question[0].Name, "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	return servfail(r)
}

func servfail(r *mdns.Msg) *mdns.Msg {
	m := new(mdns.Msg).SetRcode(r, mdns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

// maxSize is the largest reply the client accepts on this transport.
func maxSize(r *mdns.Msg, w mdns.ResponseWriter) int {
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		return mdns.MaxMsgSize
	}
	if o := r.IsEdns0(); o != nil && int(o.UDPSize()) > mdns.MinMsgSize {
		return int(o.UDPSize())
	}
	return mdns.MinMsgSize
}

func reply(w mdns.ResponseWriter, m *mdns.Msg) {
	_ = w.WriteMsg(m)
}
