package pki

import (
	"context"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// PeerIdentity returns the identity in the verified client certificate of a
// gRPC call. The certificate must have been verified by the TLS handshake
// (ServerConfig with roots); an unverified or absent one is Unauthenticated.
// It does not check the cluster or removal: the Authorizer does.
func PeerIdentity(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return Identity{}, errdefs.Newf(errdefs.ErrUnauthenticated, "the call has no TLS peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, errdefs.Newf(errdefs.ErrUnauthenticated, "the call is not over TLS")
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return Identity{}, errdefs.Newf(errdefs.ErrUnauthenticated, "the caller presented no verified node certificate")
	}
	return IdentityFromCert(chains[0][0])
}

type identityKey struct{}

// IdentityFromContext returns the caller identity the Authorizer attached to
// a call's context. ok is false for calls that came without a certificate
// (allowed only on the Authorizer's unauthenticated methods).
func IdentityFromContext(ctx context.Context) (id Identity, ok bool) {
	id, ok = ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// ContextWithIdentity returns ctx carrying id as IdentityFromContext reads
// it. For tests of handlers and for in-process calls.
func ContextWithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// AuthorizerConfig declares who may call what.
type AuthorizerConfig struct {
	// ClusterID is the only cluster whose certificates are accepted (O).
	ClusterID string
	// Policy maps each full gRPC method name ("/shoal.v1.Control/GetNode")
	// to the roles allowed to call it. A method in neither Policy nor
	// Unauthenticated is refused.
	Policy map[string][]api.NodeRole
	// Unauthenticated lists the methods that may be called without a
	// certificate (the CA bootstrap calls). When a caller does present a
	// valid certificate of this cluster, its identity is still attached.
	Unauthenticated []string
	// IsRemoved reports whether a node was removed from the cluster; its
	// certificate is then refused. Nil means no node is removed. It is called
	// on every authenticated call, concurrently, and must be fast.
	IsRemoved func(nodeID string) bool
	// IsDemoted reports whether a node the cluster has made a worker may
	// still present a manager certificate (one issued before its
	// demotion); such a caller gets a worker's rights. Nil means none is.
	// Called on every authenticated call, concurrently; must be fast.
	IsDemoted func(nodeID string) bool
}

// Authorizer checks each gRPC call against a per-method role policy. It is
// immutable after NewAuthorizer and safe for concurrent use (as long as
// IsRemoved is).
type Authorizer struct {
	clusterID string
	policy    map[string][]api.NodeRole
	open      map[string]bool
	isRemoved func(string) bool
	isDemoted func(string) bool
}

// NewAuthorizer validates cfg and builds an Authorizer. It refuses a policy
// entry with no roles, an unknown role, and a method listed both as open and
// in Policy, which are mistakes rather than intentions.
func NewAuthorizer(cfg AuthorizerConfig) (*Authorizer, error) {
	if err := validateClusterID(cfg.ClusterID); err != nil {
		return nil, err
	}
	a := &Authorizer{
		clusterID: cfg.ClusterID,
		policy:    make(map[string][]api.NodeRole, len(cfg.Policy)),
		open:      make(map[string]bool, len(cfg.Unauthenticated)),
		isRemoved: cfg.IsRemoved,
		isDemoted: cfg.IsDemoted,
	}
	for m, roles := range cfg.Policy {
		if len(roles) == 0 {
			return nil, errdefs.InvalidArgument("authorization policy of %s allows no role", m)
		}
		for _, r := range roles {
			if _, err := RoleOU(r); err != nil {
				return nil, errdefs.InvalidArgument("authorization policy of %s: %v", m, err)
			}
		}
		a.policy[m] = slices.Clone(roles)
	}
	for _, m := range cfg.Unauthenticated {
		if _, ok := a.policy[m]; ok {
			return nil, errdefs.InvalidArgument("method %s is both unauthenticated and in the role policy", m)
		}
		a.open[m] = true
	}
	return a, nil
}

// Authorize decides whether the caller of ctx may call fullMethod, and
// returns the caller's identity (ok false for an anonymous call to an open
// method). Errors: PermissionDenied for a method without policy, a wrong
// role, another cluster's or a removed node's certificate; Unauthenticated
// for a protected method called without a verified certificate.
func (a *Authorizer) Authorize(ctx context.Context, fullMethod string) (id Identity, ok bool, err error) {
	roles, protected := a.policy[fullMethod]
	if !protected && !a.open[fullMethod] {
		return Identity{}, false, errdefs.PermissionDenied("%s has no authorization policy and is refused", fullMethod)
	}
	id, err = PeerIdentity(ctx)
	if err == nil {
		err = a.checkIdentity(id)
	}
	if err == nil && id.Role == api.NodeRole_MANAGER && a.isDemoted != nil && a.isDemoted(id.NodeID) {
		// The certificate outlived the role: the cluster's word wins.
		id.Role = api.NodeRole_WORKER
	}
	if !protected {
		// Open method: anonymous callers are welcome; a certificate that
		// fails the checks is ignored rather than trusted.
		return id, err == nil, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	if !slices.Contains(roles, id.Role) {
		return Identity{}, false, errdefs.PermissionDenied("%s may not call %s (role not allowed)", id, fullMethod)
	}
	return id, true, nil
}

func (a *Authorizer) checkIdentity(id Identity) error {
	if id.ClusterID != a.clusterID {
		return errdefs.PermissionDenied("certificate of %s is not of this cluster", id)
	}
	if a.isRemoved != nil && a.isRemoved(id.NodeID) {
		return errdefs.PermissionDenied("node %s was removed from the cluster", id.NodeID)
	}
	return nil
}

// authorizeCtx runs Authorize and returns the context the handler gets, or
// the error as a gRPC status.
func (a *Authorizer) authorizeCtx(ctx context.Context, method string) (context.Context, error) {
	id, ok, err := a.Authorize(ctx, method)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if ok {
		ctx = ContextWithIdentity(ctx, id)
	}
	return ctx, nil
}

// UnaryServerInterceptor returns the interceptor that authorizes unary calls
// and attaches the caller's identity to the handler's context.
func (a *Authorizer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authorizeCtx(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the interceptor that authorizes streaming
// calls and attaches the caller's identity to the stream's context.
func (a *Authorizer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authorizeCtx(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// Uncovered returns, sorted, the methods of descs that are neither in the
// policy nor open: the ones every call to would be refused. A server can
// check it is empty at start.
func (a *Authorizer) Uncovered(descs ...*grpc.ServiceDesc) []string {
	var out []string
	for _, m := range MethodNames(descs...) {
		if _, ok := a.policy[m]; !ok && !a.open[m] {
			out = append(out, m)
		}
	}
	return out
}

// MethodNames returns, sorted, the full method names ("/pkg.Service/Method")
// of every unary and streaming method of descs.
func MethodNames(descs ...*grpc.ServiceDesc) []string {
	var out []string
	for _, d := range descs {
		for _, m := range d.Methods {
			out = append(out, "/"+d.ServiceName+"/"+m.MethodName)
		}
		for _, s := range d.Streams {
			out = append(out, "/"+d.ServiceName+"/"+s.StreamName)
		}
	}
	slices.Sort(out)
	return out
}
