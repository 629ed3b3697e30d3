// Package delivery is the service that writes mapped records to
// destinations. Each destination partition has its own durable consumer
// whose ack window (MaxAckPending) bounds the batches in flight: a slow
// destination fills its own window and slows only the syncs that feed it.
// Every record gets a final result, published to ebb.results.<sync>.
package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/debug"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/metrics"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/record"
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

// reconcile starts a worker per destination and restarts those whose config
// changed.
func reconcile(ctx context.Context, d Deps, m *members, running map[string]*worker) error {
	f, err := d.Plane.Configs.Load(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, dest := range f.Destinations {
		seen[dest.Name] = true
		if w, ok := running[dest.Name]; ok {
			if reflect.DeepEqual(w.dest, dest) {
				continue
			}
			w.stop()
			delete(running, dest.Name)
		}
		w, err := start(ctx, d, m, dest)
		if err != nil {
			d.Log.Error().Err(err).Str(logging.FieldDestination, dest.Name).Msg("starting delivery")
			continue
		}
		running[dest.Name] = w
	}
	for name, w := range running {
		if !seen[name] {
			w.stop()
			delete(running, name)
		}
	}
	return nil
}

// worker delivers to one destination: one consumer per partition.
type worker struct {
	dest   config.Destination
	opts   config.DeliveryOptions
	client destination.Destination
	limit  *limiter
	gate   *run.Gate
	debug  *debug.Publisher
	values *run.Values
	plane  *plane.Plane
	log    zerolog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
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
	values := run.NewValues(kv)
	client, err := d.OpenDestination(ctx, dest)
	if err != nil {
		return nil, fmt.Errorf("opening destination %q: %w", dest.Name, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{dest: dest, opts: opts, client: client, limit: newLimiter(opts, &m.copies), gate: run.NewGate(d.Plane.Runs, time.Second), debug: d.Debug, values: values, plane: d.Plane, cancel: cancel,
		log: d.Log.With().Str(logging.FieldDestination, dest.Name).Logger()}
	// A request in flight is kept alive while it lasts; a dead copy's
	// batches go to another after the destination's timeout plus half the
	// usual ack wait (30s by default; less with EBB_ACK_WAIT).
	ackWait, err := bus.AckWait()
	if err != nil {
		w.stop()
		return nil, err
	}
	for p := 0; p < opts.Partitions; p++ {
		cons, err := bus.Durable(ctx, d.Plane.JS, bus.StreamDeliver, jetstream.ConsumerConfig{
			Durable:       fmt.Sprintf("deliver_%s_%d", dest.Name, p),
			FilterSubject: bus.Deliver(dest.Name, p),
			MaxAckPending: opts.AckWindow,
			AckWait:       opts.Timeout + ackWait/2,
		})
		if err != nil {
			w.stop()
			return nil, err
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			log := w.log.With().Int(logging.FieldPartition, p).Logger()
			if err := bus.Work(wctx, cons, bus.WorkOptions{Workers: opts.AckWindow}, log, w.handle); err != nil {
				log.Error().Err(err).Msg("delivery stopped")
			}
		}()
	}
	w.log.Info().Int("partitions", opts.Partitions).Int("ack_window", opts.AckWindow).Msg("delivering")
	return w, nil
}

func (w *worker) stop() {
	w.cancel()
	w.wg.Wait()
	_ = w.client.Close()
}

func (w *worker) handle(ctx context.Context, msg jetstream.Msg) error {
	var raw record.RawBatch
	if err := record.Decode(msg.Data(), &raw); err != nil {
		w.log.Error().Err(err).Msg("dropping malformed delivery batch")
		return nil
	}
	b, err := raw.Batch(w.takesRaw())
	if err != nil {
		w.log.Error().Err(err).Msg("dropping malformed delivery batch")
		return nil
	}
	decision, flags, err := w.gate.CheckRun(ctx, b.Sync, b.RunID)
	switch {
	case err != nil:
		return err
	case decision == run.Drop:
		return nil // cancelled or failed: nothing more is sent
	case decision == run.Hold:
		return run.ErrHeld
	case flags.DryRun:
		return w.recordPlan(ctx, b, msg.Data())
	}
	bp := &batchPass{deadline: time.Now().Add(w.opts.RetryFor)}
	if md, err := msg.Metadata(); err == nil {
		bp.deadline = md.Timestamp.Add(w.opts.RetryFor)
	}
	results := make([]record.Result, 0, len(b.Records))
	for i := 0; i < len(b.Records); i += w.opts.BatchSize {
		chunk := b.Records[i:min(i+w.opts.BatchSize, len(b.Records))]
		id := fmt.Sprintf("%s/%d", record.MsgID(b.Sync, b.RunID, "deliver", b.Seq, b.Partition), i/w.opts.BatchSize)
		res, err := w.write(ctx, b, id, chunk, bp)
		if err != nil {
			return err // shutting down: the batch is redelivered
		}
		results = append(results, res...)
	}
	countResults(b.Sync, results)
	if flags.KeepValues {
		// Kept values only feed plans: failing to keep them must not hand
		// the batch back, which would send delivered records again.
		if err := w.keepValues(ctx, b, results); err != nil {
			w.log.Warn().Err(err).Str(logging.FieldSync, b.Sync).Msg("keeping the values sent; plans may show older ones")
		}
	}
	rb := record.ResultBatch{Sync: b.Sync, RunID: b.RunID, Seq: b.Seq, Partition: b.Partition, Results: results, Retries: bp.retries}
	data, err := json.Marshal(rb)
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	id := record.MsgID(b.Sync, b.RunID, "results", b.Seq, b.Partition)
	return bus.Publish(ctx, w.plane.JS, bus.Results(b.Sync), data, id)
}

// keepValues remembers the payloads delivered, for plans of syncs with
// keep_values. Results are in record order.
func (w *worker) keepValues(ctx context.Context, b record.Batch, results []record.Result) error {
	for i, rec := range b.Records {
		if results[i].Status != record.Delivered {
			continue
		}
		if err := w.values.Keep(ctx, b.Sync, rec); err != nil {
			return err
		}
	}
	return nil
}

// recordPlan handles a dry run's batch: what would be sent goes to the
// plans stream, and every record counts as delivered, so the run completes
// as a real one would. The destination is not called.
func (w *worker) recordPlan(ctx context.Context, b record.Batch, batch []byte) error {
	if err := bus.Publish(ctx, w.plane.JS, bus.Plan(b.Sync, b.RunID), batch, record.MsgID(b.Sync, b.RunID, "plan", b.Seq, b.Partition)); err != nil {
		return err
	}
	results := make([]record.Result, len(b.Records))
	for i, rec := range b.Records {
		results[i] = result(rec, record.Delivered, "")
	}
	rb := record.ResultBatch{Sync: b.Sync, RunID: b.RunID, Seq: b.Seq, Partition: b.Partition, Results: results}
	data, err := json.Marshal(rb)
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	return bus.Publish(ctx, w.plane.JS, bus.Results(b.Sync), data, record.MsgID(b.Sync, b.RunID, "results", b.Seq, b.Partition))
}

// batchPass is one delivery of a stream batch: the deadline of its retries
// and how many requests it retried.
type batchPass struct {
	deadline time.Time
	retries  int
	// latency and attempts describe the last request, for the debugger.
	latency  time.Duration
	attempts int
}

// observe shows a request's records to the live debugger, when someone
// watches the sync.
func (w *worker) observe(ctx context.Context, b record.Batch, id string, recs []record.Record, results []record.Result, bp *batchPass) {
	if w.debug == nil || !w.debug.Watched(ctx, b.Sync) {
		return
	}
	now := time.Now().UTC()
	for i, rec := range recs {
		w.debug.Publish(debug.Event{
			Time: now, Sync: b.Sync, RunID: b.RunID, Destination: w.dest.Name,
			Key: rec.Key, KeyText: rec.KeyEnc.String(), Op: string(rec.Op), Status: string(results[i].Status), Error: results[i].Error,
			Payload: rec.Payload(), Request: id, LatencyMS: float64(bp.latency.Microseconds()) / 1000, Attempts: bp.attempts,
		})
	}
}

// write delivers records and returns one final result per record. A batch
// rejected as a whole is split in halves until the records at fault are
// alone, so one bad record fails by itself and the rest are delivered. Each
// request is retried on its own (see send), so a retry never resends records
// another request already delivered. It returns an error only when ctx ends.
func (w *worker) write(ctx context.Context, b record.Batch, id string, recs []record.Record, bp *batchPass) ([]record.Result, error) {
	errs, err := w.send(ctx, destination.Batch{ID: id, Sync: b.Sync, RunID: b.RunID, Records: recs}, bp)
	switch {
	case err == nil:
		results := make([]record.Result, len(recs))
		for i, rec := range recs {
			results[i] = result(rec, record.Delivered, "")
			if i < len(errs) && errs[i] != nil {
				results[i] = result(rec, record.Failed, errs[i].Error())
			}
		}
		w.observe(ctx, b, id, recs, results, bp)
		return results, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case !destination.IsPermanent(err) || len(recs) == 1:
		results := failAll(recs, err.Error())
		w.observe(ctx, b, id, recs, results, bp)
		return results, nil
	}
	half := len(recs) / 2
	left, err := w.write(ctx, b, id+".0", recs[:half], bp)
	if err != nil {
		return nil, err
	}
	right, err := w.write(ctx, b, id+".1", recs[half:], bp)
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// send makes one request, paced by the destination's limiter, and retries
// transient failures with exponential backoff and jitter (or the
// destination's Retry-After) until max_attempts or the retry deadline. A
// permanent rejection is returned at once; so is a transient error that
// ran out of tries, marked by giveUpError.
func (w *worker) send(ctx context.Context, batch destination.Batch, bp *batchPass) ([]error, error) {
	dest := w.dest.Name
	for attempt := 1; ; attempt++ {
		waitStart := time.Now()
		if err := w.limit.acquire(ctx); err != nil {
			return nil, err
		}
		sent := time.Now()
		metrics.RateLimitWait.WithLabelValues(dest).Add(sent.Sub(waitStart).Seconds())
		errs, err := w.client.Write(destination.WithPacer(ctx, w.limit.pacer()), batch)
		w.limit.release()
		bp.latency, bp.attempts = time.Since(sent), attempt
		metrics.RequestSeconds.WithLabelValues(dest).Observe(bp.latency.Seconds())
		if err == nil {
			w.limit.succeeded()
			metrics.Requests.WithLabelValues(dest, "ok").Inc()
			return errs, nil
		}
		if destination.IsPermanent(err) || ctx.Err() != nil {
			metrics.Requests.WithLabelValues(dest, "rejected").Inc()
			return nil, err
		}
		wait := destination.RetryAfter(err)
		if wait > 0 {
			metrics.Requests.WithLabelValues(dest, "throttled").Inc()
			w.limit.throttled()
		} else {
			metrics.Requests.WithLabelValues(dest, "retry").Inc()
			wait = backoff(w.opts.RetryBackoff, attempt)
		}
		if attempt >= w.opts.MaxAttempts || time.Now().Add(wait).After(bp.deadline) {
			return nil, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		metrics.Retries.WithLabelValues(dest).Inc()
		bp.retries++
		w.log.Debug().Err(err).Str(logging.FieldSync, batch.Sync).Str(logging.FieldRun, batch.RunID).
			Int(logging.FieldAttempt, attempt).Dur("retry_in", wait).Msg("request failed; retrying")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// backoff is exponential with jitter: about first, 2×first, 4×first, ...
// up to a minute.
func backoff(first time.Duration, attempt int) time.Duration {
	ceiling := min(first<<min(attempt-1, 16), time.Minute)
	return ceiling/2 + time.Duration(rand.Int64N(int64(ceiling/2)+1))
}

// countResults adds a batch's final results to ebb_records_total.
func countResults(sync string, results []record.Result) {
	var ok, failed float64
	for _, r := range results {
		if r.Status == record.Delivered {
			ok++
		} else {
			failed++
		}
	}
	metrics.Records.WithLabelValues("delivered", sync, "ok").Add(ok)
	metrics.Records.WithLabelValues("delivered", sync, "failed").Add(failed)
}

func result(rec record.Record, s record.Status, reason string) record.Result {
	return record.Result{KeyEnc: rec.KeyEnc, Op: rec.Op, Change: rec.Change, Status: s, Error: reason,
		PayloadHash: payloadHash(rec)}
}

// payloadHash fingerprints a payload: FNV-1a of its JSON, whose map keys
// are sorted (encoding/json sorts them, and RawData is what it wrote), so
// the same payload always hashes the same.
func payloadHash(rec record.Record) string {
	b := []byte(rec.RawData)
	if b == nil {
		if rec.Data == nil {
			return ""
		}
		var err error
		if b, err = json.Marshal(rec.Data); err != nil {
			return ""
		}
	}
	h := fnv.New64a()
	h.Write(b)
	return strconv.FormatUint(h.Sum64(), 16)
}

// takesRaw reports whether the destination takes record data as JSON.
func (w *worker) takesRaw() bool {
	r, ok := w.client.(destination.RawTaker)
	return ok && r.TakesRawData()
}

func failAll(recs []record.Record, reason string) []record.Result {
	out := make([]record.Result, len(recs))
	for i, rec := range recs {
		out[i] = result(rec, record.Failed, reason)
	}
	return out
}
