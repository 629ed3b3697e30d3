package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/services/ebb/node"
)

// serveFlags are shared by `serve` and `dev`.
type serveFlags struct {
	listen   string
	token    string
	logLevel string
	pretty   bool
	shutdown time.Duration
	http     string
	profile  bool
	retain   time.Duration
	limitFlags
}

func (f *serveFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.listen, "listen", envOr("EBB_LISTEN", "127.0.0.1:7070"), "admin API listen address (env EBB_LISTEN)")
	cmd.Flags().StringVar(&f.token, "admin-token", os.Getenv("EBB_ADMIN_TOKEN"), "bearer token the admin API requires; without one it only listens on loopback (env EBB_ADMIN_TOKEN)")
	cmd.Flags().StringVar(&f.logLevel, "log-level", envOr("EBB_LOG_LEVEL", "info"), "debug, info, warn or error (env EBB_LOG_LEVEL)")
	cmd.Flags().BoolVar(&f.pretty, "log-pretty", false, "human-readable logs instead of JSON")
	cmd.Flags().DurationVar(&f.shutdown, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	cmd.Flags().DurationVar(&f.retain, "run-retention", envDuration("EBB_RUN_RETENTION", 30*24*time.Hour),
		"how long finished runs stay in the run history (env EBB_RUN_RETENTION)")
	cmd.Flags().StringVar(&f.http, "http", envOr("EBB_HTTP_LISTEN", httpDefault(cmd.Name())),
		"address of the HTTP server for /metrics, /healthz, /readyz and /ui/; empty turns it off (env EBB_HTTP_LISTEN)")
	cmd.Flags().BoolVar(&f.profile, "pprof", false, "also serve Go's profiler at /debug/pprof/ on the --http address (keep that address private)")
	f.limitFlags.register(cmd)
}

func newServeCmd(*globalFlags) *cobra.Command {
	var f serveFlags
	var natsURL, services string
	var replicas int
	cmd := &cobra.Command{
		Use:   "serve [SERVICE...]",
		Short: "Run some or all of Ebb's services against a NATS server",
		Long: "Run services against an external NATS JetStream server. Run as many copies as you like:\n" +
			"copies of a service share its work through shared durable consumers.\n" +
			"Services: " + joinServices(),
		Example: "  ebb serve differ --nats nats://nats:4222\n  ebb serve --services delivery,reporting",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				services = strings.Join(args, ",")
			}
			if replicas < 1 || replicas > 5 {
				return fmt.Errorf("--replicas must be between 1 and 5, not %d", replicas)
			}
			names, err := node.ParseServices(services)
			if err != nil {
				return err
			}
			limits, err := f.limits(replicas)
			if err != nil {
				return err
			}
			log := logging.Stderr(f.logLevel, f.pretty)
			nc, js, err := bus.Connect(natsURL, "ebb-serve")
			if err != nil {
				return err
			}
			defer nc.Drain()
			ctx, stop := signalContext()
			defer stop()
			return runBounded(ctx, f.shutdown, func(ctx context.Context) error {
				return node.Run(ctx, node.Options{JS: js, Log: log, Services: names, Limits: limits, HTTP: f.http, Profile: f.profile, RunRetention: f.retain,
					Admin: node.AdminOptions{Listen: f.listen, Token: f.token}})
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&natsURL, "nats", envOr("EBB_NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL (env EBB_NATS_URL)")
	cmd.Flags().IntVar(&replicas, "replicas", envInt("EBB_REPLICAS", 1),
		"copies a NATS cluster keeps of every stream, bucket and object store: 1 on a single server, 3 on a cluster; "+
			"give every process the same value (env EBB_REPLICAS)")
	cmd.Flags().StringVar(&services, "services", envOr("EBB_SERVICES", "all"), "comma-separated services to run, or all (env EBB_SERVICES)")
	return cmd
}

// envDuration reads a duration from the environment, or returns def.
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// httpDefault is the HTTP address by default: on for `ebb dev`; off for
// `ebb serve`, where several processes share a host and each needs its own
// address (--http or EBB_HTTP_LISTEN).
func httpDefault(command string) string {
	if command == "dev" {
		return "127.0.0.1:7071"
	}
	return ""
}

func joinServices() string {
	s := ""
	for i, n := range node.Services {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// runBounded runs fn until ctx ends, then gives it at most grace to return.
func runBounded(ctx context.Context, grace time.Duration, fn func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(grace):
		return &exitError{code: 1, err: errShutdownTimeout(grace)}
	}
}

type errShutdownTimeout time.Duration

func (e errShutdownTimeout) Error() string {
	return "services did not stop within " + time.Duration(e).String() + "; exiting anyway"
}
