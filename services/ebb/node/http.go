package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/metrics"
	"github.com/ebb-etl/ebb/libs/plane"
)

// serveHTTP runs the process's HTTP server until ctx ends: metrics and
// health for every process.
func serveHTTP(ctx context.Context, p *plane.Plane, o Options, lis net.Listener) error {
	mux := metrics.Handler(p.JS, bus.StreamRuns, bus.StreamRecords, bus.StreamDeliver, bus.StreamResults)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	o.Log.Info().Str("addr", lis.Addr().String()).Msg("serving /metrics, /healthz and /readyz")
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
