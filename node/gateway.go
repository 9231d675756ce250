package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// GatewayFunc runs a server beside the control socket for as long as the
// node runs: shoald's Docker Engine API gateway (package dockerapi, which
// node may not import). It serves until ctx ends and returns once it has
// stopped; an error before that stops the node.
type GatewayFunc func(ctx context.Context, env GatewayEnv) error

// GatewayEnv is what a gateway gets from its node.
type GatewayEnv struct {
	// Conn reaches the node's own control socket (LocalNode here, every
	// other service proxied to the manager), as the CLI does. The node
	// closes it after the gateway returned.
	Conn *grpc.ClientConn
	// NodeTLS returns the node's current certificate and the swarm's root
	// CA pool, for a server that serves with the node's identity and
	// accepts clients whose certificates the swarm's CA signed; ok is
	// false while the node is not in a swarm (or locked).
	NodeTLS func() (cert *tls.Certificate, roots *x509.CertPool, ok bool)
}

// gatewayMaxMsg is the largest answer the gateway accepts from the control
// socket (a long task list), as the CLI.
const gatewayMaxMsg = 64 << 20

// startGateway starts Config.Gateway, if any. done reports its end (nil
// error when ctx ended); stop cancels it, waits and closes its connection.
func (n *Node) startGateway(ctx context.Context) (done <-chan error, stop func(), err error) {
	if n.cfg.Gateway == nil {
		return nil, func() {}, nil
	}
	conn, err := grpc.NewClient("unix://"+n.cfg.ControlSocket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(gatewayMaxMsg)))
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: connect to the control socket %s: %w", n.cfg.ControlSocket, err)
	}
	gctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		err := n.cfg.Gateway(gctx, GatewayEnv{Conn: conn, NodeTLS: n.nodeTLS})
		switch {
		case gctx.Err() != nil:
			err = nil
		case err == nil:
			err = errors.New("gateway: it stopped by itself")
		}
		errc <- err
	}()
	return errc, func() {
		cancel()
		<-finished
		_ = conn.Close()
	}, nil
}

// nodeTLS is GatewayEnv.NodeTLS.
func (n *Node) nodeTLS() (*tls.Certificate, *x509.CertPool, bool) {
	mb := n.current()
	if mb == nil {
		return nil, nil, false
	}
	return mb.kp.Certificate(), mb.roots, true
}

// Gateways runs several gateways as one (shoald: the Engine API and the
// dashboard): each in its own goroutine, all stopped when ctx ends or as
// soon as one of them fails, whose error is returned. nil entries are
// skipped; with none left it returns nil.
func Gateways(gws ...GatewayFunc) GatewayFunc {
	var list []GatewayFunc
	for _, g := range gws {
		if g != nil {
			list = append(list, g)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return func(ctx context.Context, env GatewayEnv) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		errc := make(chan error, len(list))
		for _, g := range list {
			go func() { errc <- g(ctx, env) }()
		}
		var first error
		for range list {
			err := <-errc
			if first == nil && ctx.Err() == nil {
				if err == nil {
					err = errors.New("gateway: it stopped by itself")
				}
				first = err
			}
			cancel()
		}
		return first
	}
}
