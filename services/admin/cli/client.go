package cli

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// DefaultServer is where the admin API listens unless told otherwise.
const DefaultServer = "127.0.0.1:7070"

// client is a connection to the admin API.
type client struct {
	adminv1.AdminServiceClient
	conn *grpc.ClientConn
}

// dial connects to the admin API. The connection is plaintext: the admin
// API listens on loopback by default, and TLS is a later addition (for a
// remote server today, tunnel it, e.g. over SSH).
func dial(g *Globals) (*client, error) {
	server := g.Server
	if server == "" {
		server = DefaultServer
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(explainErrors(server)),
	}
	if g.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(g.Token)))
	}
	conn, err := grpc.NewClient(server, opts...)
	if err != nil {
		return nil, fmt.Errorf("admin API address %q: %w", server, err)
	}
	return &client{AdminServiceClient: adminv1.NewAdminServiceClient(conn), conn: conn}, nil
}

func (c *client) Close() error { return c.conn.Close() }

// bearer sends the token with every call.
type bearer string

func (t bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity is false until the CLI speaks TLS.
func (bearer) RequireTransportSecurity() bool { return false }

// rpcError is a call's error as people read it: the server's message
// without the gRPC prefix. Its status stays available to status.Code.
type rpcError struct {
	st  *status.Status
	msg string
}

func (e *rpcError) Error() string              { return e.msg }
func (e *rpcError) GRPCStatus() *status.Status { return e.st }

// explainErrors rewrites call errors for people, saying what to do when the
// server cannot be reached or refuses the token.
func explainErrors(server string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil || errors.Is(err, context.Canceled) {
			return err
		}
		st := status.Convert(err)
		msg := st.Message()
		switch st.Code() {
		case codes.Unavailable:
			msg = fmt.Sprintf("cannot reach the Ebb admin API at %s (%s): start it with `ebb dev`, or pass --server (env EBB_SERVER)", server, msg)
		case codes.Unauthenticated:
			msg = fmt.Sprintf("the admin API at %s refused the call (%s): pass --token (env EBB_TOKEN)", server, msg)
		case codes.DeadlineExceeded:
			msg = fmt.Sprintf("the admin API at %s did not answer in time (%s)", server, msg)
		}
		return &rpcError{st: st, msg: msg}
	}
}
