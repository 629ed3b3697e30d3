package node_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/services/ebb/node"
)

// --pprof serves Go's profiler on the HTTP address; without it, nothing.
func TestProfilerOnlyWhenAsked(t *testing.T) {
	for _, profile := range []bool{false, true} {
		ns := natstest.Start(t)
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- node.Run(ctx, node.Options{JS: ns.JS, Log: zerolog.Nop(), Services: []string{"reporting"},
				HTTP: "127.0.0.1:0", Profile: profile, HTTPReady: func(addr string) { ready <- addr }})
		}()
		var addr string
		select {
		case addr = <-ready:
		case err := <-done:
			t.Fatalf("node stopped: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("the HTTP server did not start")
		}
		res, err := http.Get("http://" + addr + "/debug/pprof/heap")
		require.NoError(t, err)
		res.Body.Close()
		want := http.StatusNotFound
		if profile {
			want = http.StatusOK
		}
		require.Equal(t, want, res.StatusCode, "profile %v", profile)
		cancel()
		require.NoError(t, <-done)
	}
}
