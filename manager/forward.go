package manager

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/fwdmeta"
	api "github.com/shoal-project/shoal/proto"
)

// Frame is an undecoded gRPC message: proxies pass frames through without
// knowing the method's types.
type Frame struct{ payload []byte }

// passthroughCodec is gRPC's proto codec that also carries Frames as raw
// bytes. It replaces the default "proto" codec process-wide; for every
// ordinary message it behaves exactly like it.
type passthroughCodec struct{}

func (passthroughCodec) Marshal(v any) ([]byte, error) {
	if f, ok := v.(*Frame); ok {
		return f.payload, nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, errdefs.Internal("cannot encode %T", v)
	}
	return proto.Marshal(m)
}

func (passthroughCodec) Unmarshal(data []byte, v any) error {
	if f, ok := v.(*Frame); ok {
		f.payload = append(f.payload[:0], data...)
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return errdefs.Internal("cannot decode into %T", v)
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return explainDecode(err, data, m)
	}
	return nil
}

// explainDecode names the field when a message does not decode because a
// text field is not UTF-8 (a client that does not check, e.g. one built on
// another protobuf library): protobuf's own error names none.
func explainDecode(err error, data []byte, m proto.Message) error {
	md := m.ProtoReflect().Descriptor()
	if path, v, found := api.InvalidUTF8Wire(data, md); found {
		return fmt.Errorf("field %s of %s is not valid UTF-8 (%s): text fields must be UTF-8", path, md.Name(), api.Echo(v))
	}
	return err
}

func (passthroughCodec) Name() string { return "proto" }

func init() { encoding.RegisterCodec(passthroughCodec{}) }

// forwardedKey marks calls that were already forwarded once, so a
// misrouted call never bounces between managers.
const forwardedKey = "shoal-forwarded"

// IsForwarded tells whether a call arrived forwarded by another manager.
func IsForwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}

func outgoing(ctx context.Context, forwardedFor string, hop bool) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	md = md.Copy()
	if hop {
		md.Set(forwardedKey, "1")
	}
	if forwardedFor != "" {
		md.Set(fwdmeta.Key, forwardedFor)
	}
	// Transport-level keys must not be copied over.
	for k := range md {
		if strings.HasPrefix(k, ":") || k == "content-type" || k == "user-agent" || k == "te" || k == "grpc-timeout" {
			delete(md, k)
		}
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// replyFor makes an empty reply message for a full method name using the
// registered descriptors.
func replyFor(method string) (proto.Message, error) {
	svc, name, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok {
		return nil, errdefs.Internal("bad method name %q", method)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, errdefs.Internal("unknown service %s", svc)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, errdefs.Internal("%s is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, errdefs.Internal("unknown method %s", method)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, errdefs.Internal("unknown message %s", md.Output().FullName())
	}
	return mt.New().Interface(), nil
}

// ForwardUnary calls method on conn with req and returns the reply.
func ForwardUnary(ctx context.Context, conn *grpc.ClientConn, method string, req any, forwardedFor string) (any, error) {
	reply, err := replyFor(method)
	if err != nil {
		return nil, err
	}
	if err := conn.Invoke(outgoing(ctx, forwardedFor, true), method, req, reply); err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	return reply, nil
}

// ForwardStream pumps frames between an incoming stream and the same method
// on conn (another manager) until either side ends. It serves unary and
// streaming methods alike.
func ForwardStream(ss grpc.ServerStream, conn *grpc.ClientConn, method string, forwardedFor string) error {
	return pump(ss, conn, method, outgoing(ss.Context(), forwardedFor, true))
}

// ProxyLocal is ForwardStream for the local control socket: the call enters
// the node's own manager as if the CLI had called it there.
func ProxyLocal(ss grpc.ServerStream, conn *grpc.ClientConn, method string) error {
	return pump(ss, conn, method, outgoing(ss.Context(), "", false))
}

func pump(ss grpc.ServerStream, conn *grpc.ClientConn, method string, octx context.Context) error {
	ctx, cancel := context.WithCancel(octx)
	defer cancel()
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	upErr := make(chan error, 1)
	go func() {
		for {
			f := &Frame{}
			if err := ss.RecvMsg(f); err != nil {
				if errors.Is(err, io.EOF) {
					upErr <- cs.CloseSend()
				} else {
					cancel()
					upErr <- err
				}
				return
			}
			if err := cs.SendMsg(f); err != nil {
				upErr <- nil // the downstream loop reports the real error
				return
			}
		}
	}()
	if md, err := cs.Header(); err == nil {
		_ = ss.SendHeader(md)
	}
	for {
		f := &Frame{}
		if err := cs.RecvMsg(f); err != nil {
			if errors.Is(err, io.EOF) {
				ss.SetTrailer(cs.Trailer())
				return nil
			}
			return errdefs.FromGRPC(err)
		}
		if err := ss.SendMsg(f); err != nil {
			return err
		}
	}
}
