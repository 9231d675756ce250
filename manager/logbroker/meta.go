package logbroker

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// forwardedForKey must match manager.ForwardedForKey (this package cannot
// import manager).
const forwardedForKey = "shoal-forwarded-for"

func forwardedFor(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(forwardedForKey); len(v) == 1 {
		return v[0]
	}
	return ""
}
