// Package transformer is the service that maps extracted records into what
// the destination expects and routes each extracted batch, whole, to one
// of its destination's lanes (see Lane).
package transformer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/debug"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/mapper"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/transform"
)

// Deps is what the transformer needs.
type Deps struct {
	Plane *plane.Plane
	Log   zerolog.Logger
	// Workers is how many batches are transformed at once.
	Workers int
}

type service struct {
	Deps
	gate  *run.Gate
	mu    sync.Mutex
	plans map[string]*runPlan // by run id; small, reset when full
	// code holds compiled transformations by version, shared by the runs
	// that use the same code.
	code map[string]*transform.Transformation
	// debug sends the transformation's log() lines to the live debugger.
	debug *debug.Publisher
	// full remembers the lanes that refused a batch lately.
	full *fullLanes
}

// runPlan is what the transformer needs of a run, read once.
type runPlan struct {
	run    *run.Run
	mapper *mapper.Mapper
	js     *transform.Transformation // nil without a transformation
	probe  probe
}

// passesThrough reports whether records leave as they came: no mapping,
// no transformation.
func (p *runPlan) passesThrough() bool { return p.mapper.Identity() && p.js == nil }

// Run consumes record batches until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if d.Workers <= 0 {
		d.Workers = 4
	}
	d.Log = d.Log.With().Str(logging.FieldService, "transformer").Logger()
	cons, err := bus.Durable(ctx, d.Plane.JS, bus.StreamRecords, jetstream.ConsumerConfig{
		Durable:       "transformer",
		FilterSubject: bus.Records("*"),
		// Batches handed back while their lane is full wait here without
		// a worker (at most the sync buffer of each sync): room for many
		// keeps every other sync's batches coming.
		MaxAckPending: 4096,
	})
	if err != nil {
		return err
	}
	pub, err := debug.NewPublisher(ctx, d.Plane.JS.Conn(), d.Plane.State, 200)
	if err != nil {
		return err
	}
	s := &service{Deps: d, gate: run.NewGate(d.Plane.Runs, time.Second), plans: map[string]*runPlan{},
		code: map[string]*transform.Transformation{}, debug: pub, full: newFullLanes()}
	return d.Plane.Bus.Work(ctx, cons, bus.WorkOptions{Workers: d.Workers}, d.Log, s.handle)
}

// Lane picks the destination lane of a run's batch: batches go round the
// lanes in turn, each whole. Keeping a batch whole fills the destination's
// requests to batch_size (a batch spread over lanes by key became one
// part-filled request per lane) and takes one publish. Order per key does
// not need a key to keep its lane: a key is in one batch of a run (a
// mirror run's deletes go, and get their results, before its other
// records), and a run delivers nothing before the previous run of its sync
// has ended and its requests in flight with it.
func Lane(seq, partitions int) int { return seq % max(partitions, 1) }

func (s *service) plan(ctx context.Context, sync, runID string) (*runPlan, error) {
	s.mu.Lock()
	p, ok := s.plans[runID]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	r, err := s.Plane.Runs.Get(ctx, sync, runID)
	if err != nil {
		return nil, err
	}
	m, err := mapper.New(r.Spec.Mapping)
	if err != nil {
		return nil, fmt.Errorf("sync %q: %w", sync, err)
	}
	p = &runPlan{run: r, mapper: m}
	if t := r.Spec.Transformation; t != nil {
		if p.js, err = s.compiled(t); err != nil {
			return nil, &codeError{fmt.Errorf("sync %q: loading transformation %s: %w", sync, t.Version, err)}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Another worker may have built it meanwhile: keep one, so the run's
	// batches share one probe of a transformation failing everything.
	if existing, ok := s.plans[runID]; ok {
		return existing, nil
	}
	if len(s.plans) > 256 {
		s.plans = map[string]*runPlan{}
	}
	s.plans[runID] = p
	return p, nil
}

func (s *service) handle(ctx context.Context, msg jetstream.Msg) error {
	body, err := s.Plane.Bus.Body(ctx, msg)
	if err != nil {
		return err
	}
	// Data stays JSON until the plan says it must be read: a sync with no
	// mapping and no transformation passes it through as it came.
	b, err := record.DecodeBatch(body, true)
	if err != nil {
		s.Log.Error().Err(err).Msg("dropping malformed record batch")
		return nil
	}
	switch decision, err := s.gate.Check(ctx, b.Sync, b.RunID); {
	case err != nil:
		return err
	case decision == run.Drop:
		return nil // cancelled or failed: nothing more is sent
	case decision == run.Hold:
		return run.ErrHeld
	}
	p, err := s.plan(ctx, b.Sync, b.RunID)
	if errors.Is(err, run.ErrNotFound) {
		return nil
	}
	var bad *codeError
	if errors.As(err, &bad) {
		return s.stopRun(ctx, b, bad.Error())
	}
	if err != nil {
		return err
	}
	if !p.passesThrough() {
		if err := b.DecodeData(); err != nil {
			s.Log.Error().Err(err).Msg("dropping malformed record batch")
			return nil
		}
	}
	dest, lane := p.run.Spec.Destination, Lane(b.Seq, p.run.Partitions)
	if s.full.is(dest, lane) {
		return handBack(fmt.Errorf("lane %d of destination %q: %w", lane, dest, bus.ErrFull))
	}
	records, verdict := s.transform(ctx, p, b)
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: records cut short are redelivered, not failed
	}
	if verdict != "" {
		return s.stopRun(ctx, b, verdict)
	}
	return s.publish(ctx, b, dest, lane, records)
}

// publish publishes a batch's records to its lane, as one message: what
// the transformation answered the first time is all that is ever
// delivered, since a repeat within the duplicate window is dropped and a
// later one can only follow a batch that was handed back unpublished. A
// full lane hands the batch back.
func (s *service) publish(ctx context.Context, b record.Batch, dest string, lane int, records []record.Record) error {
	out := record.Batch{Sync: b.Sync, RunID: b.RunID, Seq: b.Seq, Partition: lane, Destination: dest, Records: records}
	data, err := record.EncodeBatch(out)
	if err != nil {
		return fmt.Errorf("encoding batch %d: %w", b.Seq, err)
	}
	id := record.MsgID(b.Sync, b.RunID, "transform", b.Seq, lane)
	err = s.Plane.Bus.Publish(ctx, bus.Deliver(dest, lane), data, id)
	record.Recycle(data)
	switch {
	case errors.Is(err, bus.ErrFull):
		s.full.mark(dest, lane)
		return handBack(fmt.Errorf("lane %d of destination %q: %w", lane, dest, err))
	case bus.IsPermanent(err):
		return s.stopRun(ctx, b, err.Error())
	}
	return err
}

// handBack returns a batch whose lane is full to the stream, to come back
// in a second; the worker serves other syncs meanwhile.
func handBack(err error) error { return &bus.RetryError{Err: err, Delay: time.Second, Hold: true} }

// stopRun fails a run that cannot go on: a transformation that fails
// every record it is given (one clear error instead of millions of failed
// rows), or a publish that can never succeed.
func (s *service) stopRun(ctx context.Context, b record.Batch, reason string) error {
	s.Log.Error().Str(logging.FieldSync, b.Sync).Str(logging.FieldRun, b.RunID).Str("reason", reason).
		Msg("stopping run")
	_, err := s.Plane.Runs.Fail(ctx, b.Sync, b.RunID, reason)
	return err
}

// transform maps each record and runs the transformation on the mapped
// records. Every record comes out, to be sent or as a final result: failed
// by its mapping or transformation, or filtered out by it. So whatever the
// transformation does on a redelivery, each record is in exactly one lane
// message, and the first version of it is the one that counts. A
// non-empty verdict means the transformation has failed every record so
// far and the run must stop.
func (s *service) transform(ctx context.Context, p *runPlan, b record.Batch) (out []record.Record, verdict string) {
	out = make([]record.Record, 0, len(b.Records))
	route := func(rec record.Record) { out = append(out, rec) }
	var mapped []record.Record // in order, for the transformation
	for _, rec := range b.Records {
		if rec.Op == record.OpDelete || !rec.Sendable() || p.passesThrough() {
			route(rec) // nothing to map or transform
			continue
		}
		data, err := p.mapper.Map(rec.Data)
		if err != nil {
			route(final(rec, record.Failed, err.Error()))
			continue
		}
		rec.Data = data
		if p.js == nil {
			route(rec)
			continue
		}
		mapped = append(mapped, rec)
	}
	if len(mapped) == 0 {
		return out, ""
	}
	outs := p.js.Run(ctx, inputs(b, mapped))
	failed := 0
	for i, out := range outs {
		rec := mapped[i]
		s.logLines(ctx, b, rec, out.Logs)
		switch {
		case out.Err != nil:
			failed++
			route(final(rec, record.Failed, "transformation: "+out.Err.Error()))
		case len(out.Records) == 0:
			route(final(rec, record.Filtered, ""))
		default:
			// Fan-out: the copies go together, in the order the code
			// returned them.
			for j, data := range out.Records {
				cp := rec
				cp.Data, cp.Extra = data, j > 0
				route(cp)
			}
		}
	}
	return out, p.probe.observe(len(outs), failed, firstError(outs))
}

func inputs(b record.Batch, recs []record.Record) []transform.Input {
	in := make([]transform.Input, len(recs))
	for i, rec := range recs {
		in[i] = transform.Input{Data: rec.Data, Meta: transform.Metadata{
			Sync: b.Sync, Run: b.RunID, Op: string(rec.Op), Key: rec.Key,
		}}
	}
	return in
}

// final makes rec a record whose outcome is decided: it travels to its
// lane only to have its result reported.
func final(rec record.Record, st record.Status, reason string) record.Record {
	rec.Data, rec.Final, rec.Error = nil, st, record.Truncate(reason)
	return rec
}

func firstError(outs []transform.Output) string {
	for _, o := range outs {
		if o.Err != nil {
			return o.Err.Error()
		}
	}
	return ""
}

// logLines passes what the code logged on; the live debugger will read
// them from here.
func (s *service) logLines(ctx context.Context, b record.Batch, rec record.Record, lines []string) {
	for _, l := range lines {
		s.Log.Debug().Str(logging.FieldSync, b.Sync).Str(logging.FieldRun, b.RunID).
			Stringer("key", rec.KeyEnc).Str("line", l).Msg("transformation log")
	}
	if len(lines) == 0 || !s.debug.Watched(ctx, b.Sync) {
		return
	}
	s.debug.Publish(debug.Event{Time: time.Now().UTC(), Sync: b.Sync, RunID: b.RunID, Key: rec.Key,
		KeyText: rec.KeyEnc.String(), Op: string(rec.Op), Status: debug.StatusLog, Logs: lines})
}

// fullLanes remembers the lanes that refused a batch in the last second,
// so a batch bound for one of them is handed back before it is
// transformed again.
type fullLanes struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func newFullLanes() *fullLanes { return &fullLanes{until: map[string]time.Time{}} }

func (f *fullLanes) mark(dest string, part int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.until) > 4096 {
		f.until = map[string]time.Time{}
	}
	f.until[bus.Deliver(dest, part)] = time.Now().Add(time.Second)
}

// is reports whether a lane refused a batch lately.
func (f *fullLanes) is(dest string, lane int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	until, ok := f.until[bus.Deliver(dest, lane)]
	return ok && time.Now().Before(until)
}
