package convert

import (
	"maps"
	"time"

	"github.com/moby/moby/api/types/volume"

	api "github.com/shoal-project/shoal/proto"
)

// VolumeToMoby is a node-local volume as Docker's volume.Volume: driver
// and scope "local", CreatedAt in RFC 3339 at second precision in local
// time (as dockerd writes it). withUsage adds UsageData (RefCount: the
// containers that use it; Size -1: not measured), as `docker system df`
// and `volume ls` with verbose answers show it.
func VolumeToMoby(v *api.Volume, withUsage bool) volume.Volume {
	out := volume.Volume{
		Name:       v.GetName(),
		Driver:     v.GetDriver(),
		Mountpoint: v.GetMountpoint(),
		Scope:      v.GetScope(),
		Labels:     maps.Clone(v.GetLabels()),
		Options:    maps.Clone(v.GetOptions()),
	}
	if out.Driver == "" {
		out.Driver = "local"
	}
	if out.Scope == "" {
		out.Scope = "local"
	}
	if t := v.GetCreatedAt(); t != nil {
		out.CreatedAt = t.AsTime().In(time.Local).Truncate(time.Second).Format(time.RFC3339)
	}
	if withUsage {
		out.UsageData = &volume.UsageData{RefCount: int64(len(v.GetUsedBy())), Size: -1}
	}
	return out
}
