package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/embedded"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/services/ebb/node"
)

// DefaultNATSPort is where `ebb dev` serves its embedded NATS: not 4222,
// which a system NATS often holds.
const DefaultNATSPort = 4223

// devMemoryLimit is the Go soft memory limit `ebb dev` sets unless
// GOMEMLIMIT is given. One process holds every service and a NATS server,
// whose live heap stays near 110 MB even at 10M rows; without a limit the
// garbage collector let the process grow to about 390 MB (GOGC's 2x of the
// heap, plus the NATS server's buffers in flight). With it the 10M-row
// sync peaked at 281 MB and took no longer. It is soft: a process that
// needs more gets more, the collector only works harder.
const devMemoryLimit = 200 << 20

func newDevCmd(*globalFlags) *cobra.Command {
	var f serveFlags
	var dataDir string
	var natsPort int
	var demo, once bool
	cmd := &cobra.Command{
		Use:   "dev [--demo [--once]]",
		Short: "Run all of Ebb in one process with an embedded NATS server",
		Long: "Run every service, the admin API and an embedded NATS JetStream server (data under --data)\n" +
			"in one process, until Ctrl-C. With --demo, also seed an embedded DuckDB warehouse and a\n" +
			"local capture destination, and run a demo sync twice; --once exits after the demo.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if once && !demo {
				return fmt.Errorf("--once only applies with --demo")
			}
			limits, err := f.limits(1)
			if err != nil {
				return err
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(devMemoryLimit)
			}
			log := logging.Stderr(f.logLevel, f.pretty)
			if demo && f.logLevel == "info" && !cmd.Flags().Changed("log-level") {
				log = logging.Stderr("warn", true) // keep the demo's own output readable
			}
			srv, err := embedded.StartNATS(embedded.Options{Port: natsPort, StoreDir: filepath.Join(dataDir, "nats")})
			if err != nil {
				return fmt.Errorf("starting embedded NATS on port %d (is another `ebb dev` running? pick one with --nats-port): %w", natsPort, err)
			}
			defer srv.WaitForShutdown()
			defer srv.Shutdown()
			nc, js, err := bus.Connect(srv.ClientURL(), "ebb-dev")
			if err != nil {
				return err
			}
			defer nc.Close()

			ctx, stop := signalContext()
			defer stop()
			ready := make(chan string, 1)
			nodeCtx, stopNode := context.WithCancel(ctx)
			defer stopNode()
			nodeDone := make(chan error, 1)
			var httpAddr atomic.Value // set before any service starts
			httpAddr.Store("off")
			go func() {
				nodeDone <- node.Run(nodeCtx, node.Options{JS: js, Log: log, Limits: limits, HTTP: f.http, Profile: f.profile, RunRetention: f.retain, HTTPReady: func(a string) { httpAddr.Store(a) },
					Admin: node.AdminOptions{Listen: f.listen, Token: f.token, Ready: func(a string) { ready <- a }}})
			}()
			var adminAddr string
			select {
			case adminAddr = <-ready:
			case err := <-nodeDone:
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Ebb is running.\n  admin API  %s   (ebb --server %s syncs list)\n  NATS       %s   (nats --server %s stream ls)\n  HTTP       %s   (/ui/, /metrics, /healthz)\n  data       %s\n",
				adminAddr, adminAddr, srv.ClientURL(), srv.ClientURL(), httpAddr.Load(), dataDir)
			if demo {
				if err := runDemo(ctx, js, srv.ClientURL(), dataDir, out); err != nil {
					stopNode()
					<-nodeDone
					return err
				}
				if once {
					stopNode()
					return <-nodeDone
				}
			}
			fmt.Fprintln(out, "Serving until Ctrl-C.")
			return runBounded(ctx, f.shutdown, func(ctx context.Context) error {
				select {
				case <-ctx.Done():
				case err := <-nodeDone:
					return err
				}
				stopNode()
				return <-nodeDone
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&dataDir, "data", envOr("EBB_DATA", ".ebb"), "where the embedded NATS keeps its data (env EBB_DATA)")
	cmd.Flags().IntVar(&natsPort, "nats-port", envInt("EBB_NATS_PORT", DefaultNATSPort), "embedded NATS port on 127.0.0.1 (env EBB_NATS_PORT)")
	cmd.Flags().BoolVar(&demo, "demo", false, "seed a demo warehouse and destination and run a demo sync")
	cmd.Flags().BoolVar(&once, "once", false, "with --demo: exit after the demo")
	return cmd
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
