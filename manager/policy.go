package manager

import (
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// Unauthenticated methods: how a joining node gets the root CA and its
// certificate. Nothing else answers without a certificate.
var Unauthenticated = []string{
	"/shoal.v1.CA/GetRootCACertificate",
	"/shoal.v1.CA/IssueNodeCertificate",
}

var (
	managersOnly = []api.NodeRole{api.NodeRole_MANAGER}
	anyNode      = []api.NodeRole{api.NodeRole_MANAGER, api.NodeRole_WORKER}
)

// Policy is the role each method of the manager's gRPC server requires.
// Every method of every service the manager registers must appear here or
// in Unauthenticated; pki.Authorizer refuses any other.
func Policy() map[string][]api.NodeRole {
	p := map[string][]api.NodeRole{}
	add := func(desc grpc.ServiceDesc, roles []api.NodeRole) {
		for _, m := range pki.MethodNames(&desc) {
			p[m] = roles
		}
	}
	add(api.Raft_ServiceDesc, managersOnly)
	add(api.Control_ServiceDesc, managersOnly)
	add(api.Logs_ServiceDesc, managersOnly)
	add(api.Stats_ServiceDesc, managersOnly)
	add(api.Watch_ServiceDesc, managersOnly)
	add(api.Dispatcher_ServiceDesc, anyNode)
	add(api.HeartbeatRelay_ServiceDesc, managersOnly)
	add(api.LogBroker_ServiceDesc, anyNode)
	add(api.StatsBroker_ServiceDesc, anyNode)
	p["/shoal.v1.CA/RenewNodeCertificate"] = anyNode
	return p
}
