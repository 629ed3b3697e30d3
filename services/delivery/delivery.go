// Package delivery is the service that writes mapped records to
// destinations. Each destination lane (partition) has its own durable
// consumer whose ack window (MaxAckPending) bounds the batches in flight: a
// slow destination fills its own window and slows only the syncs that feed
// it. Every record gets a final result, published to ebb.results.<sync>.
//
// Before every request (first attempt or retry) delivery registers it as in
// flight for its run and checks that the run is still live: a run cancelled
// or failed stops writing within DeliveryGateTTL, and its sync's next run
// waits until the requests in flight have ended (see run.Drained).
package delivery

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/debug"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/run"
)

// Deps is what the delivery service needs.
type Deps struct {
	Plane           *plane.Plane
	Log             zerolog.Logger
	OpenDestination func(context.Context, config.Destination) (destination.Destination, error)
	// Refresh is how often the destination list is re-read.
	Refresh time.Duration
	// Debug, when set, feeds the live debugger.
	Debug *debug.Publisher
	// MemberTTL is how long a delivery copy counts as live without
	// renewing its key; default 15s.
	MemberTTL time.Duration
}

// Run delivers to every configured destination until ctx ends, starting,
// restarting and stopping consumers as destinations are added, changed and
// removed.
func Run(ctx context.Context, d Deps) error {
	if d.Refresh <= 0 {
		d.Refresh = 10 * time.Second
	}
	if d.MemberTTL <= 0 {
		d.MemberTTL = 15 * time.Second
	}
	if d.Debug == nil {
		// At most 200 records a second per watched sync reach the debugger.
		var err error
		if d.Debug, err = debug.NewPublisher(ctx, d.Plane.JS.Conn(), d.Plane.State, 200); err != nil {
			return err
		}
	}
	d.Log = d.Log.With().Str(logging.FieldService, "delivery").Logger()
	m := newMembers(d.Plane.State, d.MemberTTL, d.Log)
	go m.run(ctx)
	running := map[string]*worker{}
	defer func() {
		for _, w := range running {
			w.stop()
		}
	}()
	// A new or edited destination is picked up at once through a watch;
	// the ticker catches anything a watch could miss across reconnects.
	changed, err := d.Plane.Configs.Watch(ctx, config.KindDestination)
	if err != nil {
		return err
	}
	t := time.NewTicker(d.Refresh)
	defer t.Stop()
	for {
		if err := reconcile(ctx, d, m, running); err != nil && ctx.Err() == nil {
			d.Log.Warn().Err(err).Msg("reading destinations")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-t.C:
		}
	}
}

// reconcile starts a worker per destination, restarts those whose config
// changed, and makes each serve every lane that holds batches.
func reconcile(ctx context.Context, d Deps, m *members, running map[string]*worker) error {
	f, err := d.Plane.Configs.Load(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, dest := range f.Destinations {
		seen[dest.Name] = true
		w, ok := running[dest.Name]
		if ok && !reflect.DeepEqual(w.dest, dest) {
			w.stop()
			delete(running, dest.Name)
			ok = false
		}
		if !ok {
			if w, err = start(ctx, d, m, dest); err != nil {
				d.Log.Error().Err(err).Str(logging.FieldDestination, dest.Name).Msg("starting delivery")
				continue
			}
			running[dest.Name] = w
		}
		if err := w.serveStranded(ctx); err != nil {
			d.Log.Warn().Err(err).Str(logging.FieldDestination, dest.Name).Msg("looking for batches in other lanes")
		}
	}
	for name, w := range running {
		if !seen[name] {
			w.stop()
			delete(running, name)
		}
	}
	return nil
}

// worker delivers to one destination: one consumer per lane.
type worker struct {
	dest    config.Destination
	opts    config.DeliveryOptions
	conn    *connection
	limit   *limiter
	gate    *run.Gate
	debug   *debug.Publisher
	values  *run.Values
	plane   *plane.Plane
	members *members
	log     zerolog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu    sync.Mutex
	lanes map[int]bool
}

func start(ctx context.Context, d Deps, m *members, dest config.Destination) (*worker, error) {
	opts, err := dest.Delivery()
	if err != nil {
		return nil, err
	}
	kv, err := d.Plane.JS.KeyValue(ctx, bus.BucketValues)
	if err != nil {
		return nil, fmt.Errorf("opening the values bucket: %w", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{dest: dest, opts: opts, limit: newLimiter(opts, &m.copies),
		gate: run.NewGate(d.Plane.Runs, run.DeliveryGateTTL), debug: d.Debug, values: run.NewValues(kv),
		plane: d.Plane, members: m, ctx: wctx, cancel: cancel, lanes: map[int]bool{},
		log: d.Log.With().Str(logging.FieldDestination, dest.Name).Logger()}
	// A destination that cannot be opened still gets its consumers: its
	// batches then fail their runs with the reason (see connection), where
	// users look, instead of waiting in the stream.
	w.conn = newConnection(ctx, dest, d.OpenDestination, opts, w.log)
	for p := 0; p < opts.Partitions; p++ {
		if err := w.serve(ctx, p); err != nil {
			w.stop()
			return nil, err
		}
	}
	w.log.Info().Int("partitions", opts.Partitions).Int("ack_window", opts.AckWindow).Msg("delivering")
	return w, nil
}

// serve starts the consumer of lane p, once.
func (w *worker) serve(ctx context.Context, p int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lanes[p] {
		return nil
	}
	// A request in flight is kept alive by Work's in-progress marks however
	// long the destination takes, so a dead copy's batches go to another
	// after the usual ack wait (10s), not after the destination's timeout.
	cons, err := bus.Durable(ctx, w.plane.JS, bus.StreamDeliver, jetstream.ConsumerConfig{
		Durable:       fmt.Sprintf("deliver_%s_%d", w.dest.Name, p),
		FilterSubject: bus.Deliver(w.dest.Name, p),
		MaxAckPending: w.opts.AckWindow,
	})
	if err != nil {
		return err
	}
	w.lanes[p] = true
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		log := w.log.With().Int(logging.FieldPartition, p).Logger()
		if err := w.plane.Bus.Work(w.ctx, cons, bus.WorkOptions{Workers: w.opts.AckWindow}, log, w.handle); err != nil {
			log.Error().Err(err).Msg("delivery stopped")
		}
	}()
	return nil
}

// serveStranded starts consumers for lanes beyond the configured
// partitions that hold batches: a run keeps the partition count it started
// with, so lowering a destination's partitions mid-run would otherwise
// strand the batches of the lanes dropped.
func (w *worker) serveStranded(ctx context.Context) error {
	st, err := w.plane.JS.Stream(ctx, bus.StreamDeliver)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(bus.DeliverLanes(w.dest.Name)))
	if err != nil {
		return err
	}
	for subject, n := range info.State.Subjects {
		p, err := strconv.Atoi(subject[strings.LastIndexByte(subject, '.')+1:])
		if err != nil || n == 0 || p < w.opts.Partitions {
			continue
		}
		w.log.Info().Int(logging.FieldPartition, p).Uint64("batches", n).Msg("serving a lane beyond the configured partitions until its batches are delivered")
		if err := w.serve(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (w *worker) stop() {
	w.cancel()
	w.wg.Wait()
	w.conn.close()
}
