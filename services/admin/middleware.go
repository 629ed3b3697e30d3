package admin

import (
	"context"
	"crypto/subtle"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	grpclog "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/validator"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ebb-etl/ebb/libs/logging"
)

// newGRPCServer returns a server whose calls are, outermost first: logged
// (method, code and duration, never payloads), recovered from panics,
// authenticated when token is set (except health checks) and validated.
func newGRPCServer(log zerolog.Logger, token string) *grpc.Server {
	logOpts := []grpclog.Option{
		grpclog.WithLogOnEvents(grpclog.FinishCall),
		grpclog.WithLevels(codeToLevel),
		grpclog.WithDurationField(func(d time.Duration) grpclog.Fields {
			return grpclog.Fields{logging.FieldDuration, d}
		}),
	}
	recoverOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.Error().Str(fieldPanic, fmt.Sprint(p)).Bytes(fieldStack, debug.Stack()).Msg("admin API call panicked")
		return status.Error(codes.Internal, "internal error")
	})
	unary := []grpc.UnaryServerInterceptor{
		grpclog.UnaryServerInterceptor(zerologAdapter(log), logOpts...),
		recovery.UnaryServerInterceptor(recoverOpt),
	}
	stream := []grpc.StreamServerInterceptor{
		grpclog.StreamServerInterceptor(zerologAdapter(log), logOpts...),
		recovery.StreamServerInterceptor(recoverOpt),
	}
	if token != "" {
		check := selector.MatchFunc(notHealth)
		unary = append(unary, selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(bearer(token)), check))
		stream = append(stream, selector.StreamServerInterceptor(auth.StreamServerInterceptor(bearer(token)), check))
	}
	unary = append(unary, validator.UnaryServerInterceptor())
	stream = append(stream, validator.StreamServerInterceptor())
	return grpc.NewServer(grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...))
}

// bearer checks the call's bearer token against token in constant time.
func bearer(token string) auth.AuthFunc {
	return func(ctx context.Context) (context.Context, error) {
		got, err := auth.AuthFromMD(ctx, "bearer")
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return nil, status.Error(codes.Unauthenticated, "invalid bearer token")
		}
		return ctx, nil
	}
}

// notHealth lets health checks through without a token, so probes work.
func notHealth(_ context.Context, c interceptors.CallMeta) bool {
	return c.Service != healthpb.Health_ServiceDesc.ServiceName
}

// codeToLevel logs successful calls at debug, as the CLI polls.
func codeToLevel(c codes.Code) grpclog.Level {
	if c == codes.OK {
		return grpclog.LevelDebug
	}
	return grpclog.DefaultServerCodeToLevel(c)
}

// zerologAdapter sends the logging interceptor's lines to log.
func zerologAdapter(log zerolog.Logger) grpclog.Logger {
	return grpclog.LoggerFunc(func(_ context.Context, lvl grpclog.Level, msg string, fields ...any) {
		var e *zerolog.Event
		switch lvl {
		case grpclog.LevelDebug:
			e = log.Debug()
		case grpclog.LevelInfo:
			e = log.Info()
		case grpclog.LevelWarn:
			e = log.Warn()
		default:
			e = log.Error()
		}
		e.Fields(fields).Msg(msg)
	})
}
