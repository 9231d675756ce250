// Package fwdmeta carries, in gRPC metadata, the node a manager forwards a
// call for: when a follower forwards an agent's or a joining node's call to
// the leader, the leader sees the follower's certificate, and this names the
// node behind it. Only a manager's word is taken (Trusted). Stateless.
package fwdmeta

import (
	"context"

	"google.golang.org/grpc/metadata"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// Key is the metadata key.
const Key = "shoal-forwarded-for"

// Get returns the node a call was forwarded for, "" if none.
func Get(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(Key); len(v) == 1 {
		return v[0]
	}
	return ""
}

// Caller is the node a call is for: the caller itself, or — when a manager
// forwarded it — the node it names. ok is false without a verified
// certificate.
func Caller(ctx context.Context) (nodeID string, ok bool) {
	id, ok := pki.IdentityFromContext(ctx)
	if !ok {
		return "", false
	}
	if f := Get(ctx); f != "" && id.Role == api.NodeRole_MANAGER {
		return f, true
	}
	return id.NodeID, true
}
