package dockerapi

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-project/shoal/dockerapi/convert"
	api "github.com/shoal-project/shoal/proto"
)

// maxCachedServices bounds svcCache: past it the cache is emptied (a
// service's JSON is about 1.5 KiB: a few MiB at most).
const maxCachedServices = 4096

// svcCache keeps the JSON that GET /services last made of each service,
// keyed by ID and reused while the service's version (the raft index of its
// last change, which every change moves) is the same. Converting and
// encoding 1,000 services cost about 3 ms of CPU per `docker service ls`,
// most of the gateway's time over the gRPC call it makes; the cache is
// derived data only, never a source of truth, and bounded. Safe for
// concurrent use.
type svcCache struct {
	mu sync.Mutex
	m  map[string]cachedService
}

type cachedService struct {
	version uint64
	json    []byte // swarm.Service without ServiceStatus, as json.Marshal gives it
}

// encode returns svc's JSON as Docker's swarm.Service, from the cache when
// svc's version was encoded before.
func (c *svcCache) encode(svc *api.Service) ([]byte, error) {
	v := svc.GetMeta().GetVersion()
	c.mu.Lock()
	e, ok := c.m[svc.GetId()]
	c.mu.Unlock()
	if ok && e.version == v && v != 0 {
		return e.json, nil
	}
	b, err := json.Marshal(convert.ServiceToMoby(svc))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedServices {
		c.m = make(map[string]cachedService)
	}
	c.m[svc.GetId()] = cachedService{version: v, json: b}
	c.mu.Unlock()
	return b, nil
}

// writeServices writes the JSON array of svcs as GET /services answers it;
// status, when not nil, gives each service's ServiceStatus (?status=true),
// added as the object's last member.
func (c *svcCache) writeServices(buf *bytes.Buffer, svcs []*api.Service, status func(*api.Service) *swarm.ServiceStatus) error {
	buf.WriteByte('[')
	for i, svc := range svcs {
		b, err := c.encode(svc)
		if err != nil {
			return err
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		if status == nil {
			buf.Write(b)
			continue
		}
		st, err := json.Marshal(status(svc))
		if err != nil {
			return err
		}
		buf.Write(b[:len(b)-1]) // without the closing brace
		buf.WriteString(`,"ServiceStatus":`)
		buf.Write(st)
		buf.WriteByte('}')
	}
	buf.WriteString("]\n")
	return nil
}
