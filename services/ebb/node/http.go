package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/metrics"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/quarantine"
	"github.com/ebb-etl/ebb/services/admin/ui"
)

// serveHTTP runs the process's HTTP server until ctx ends: metrics and
// health for every process, and the web page where the admin API runs.
func serveHTTP(ctx context.Context, p *plane.Plane, o Options, lis net.Listener) error {
	mux := metrics.Handler(p.JS, bus.StreamRuns, bus.StreamRecords, bus.StreamDeliver, bus.StreamResults)
	if slices.Contains(o.Services, "admin") {
		// The web page goes with the admin API, behind the same token.
		mux.Handle("/ui/", http.StripPrefix("/ui", ui.Handler(ui.Deps{
			Configs: p.Configs, Runs: p.Runs, JS: p.JS, State: p.State,
			Quarantine: quarantine.New(p.State), Token: o.Admin.Token, Log: o.Log,
		})))
		mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}
	if o.Profile {
		// Heap and CPU profiles of a running process, for diagnosing it.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
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
