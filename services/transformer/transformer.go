// Package transformer is the service that maps extracted records into what
// the destination expects and routes each to its destination partition by a
// hash of its key, so every key always takes the same ordered lane.
package transformer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
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
}

// runPlan is what the transformer needs of a run, read once.
type runPlan struct {
	run    *run.Run
	mapper *mapper.Mapper
	js     *transform.Transformation // nil without a transformation
	probe  probe
}

// Run consumes record batches until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if d.Workers <= 0 {
		d.Workers = 4
	}
	d.Log = d.Log.With().Str(logging.FieldService, "transformer").Logger()
	cons, err := bus.Durable(ctx, d.Plane.JS, bus.StreamRecords, jetstream.ConsumerConfig{
		Durable:       "transformer",
		FilterSubject: bus.Records("*"),
		MaxAckPending: d.Workers * 4,
	})
	if err != nil {
		return err
	}
	pub, err := debug.NewPublisher(ctx, d.Plane.JS.Conn(), d.Plane.State, 200)
	if err != nil {
		return err
	}
	s := &service{Deps: d, gate: run.NewGate(d.Plane.Runs, time.Second), plans: map[string]*runPlan{},
		code: map[string]*transform.Transformation{}, debug: pub}
	return bus.Work(ctx, cons, bus.WorkOptions{Workers: d.Workers}, d.Log, s.handle)
}

// Partition picks a key's lane.
func Partition(key record.Key, partitions int) int {
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(partitions))
}

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
	var b record.Batch
	if err := record.Decode(msg.Data(), &b); err != nil {
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
	lanes, final, fanout, verdict := s.transform(ctx, p, b)
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: records cut short are redelivered, not failed
	}
	if verdict != "" {
		return s.stopRun(ctx, b, verdict)
	}
	if fanout > 0 {
		if err := s.countFanout(ctx, b, fanout); err != nil {
			return err
		}
	}
	for part, records := range lanes {
		if len(records) == 0 {
			continue
		}
		out := record.Batch{Sync: b.Sync, RunID: b.RunID, Seq: b.Seq, Partition: part,
			Destination: p.run.Spec.Destination, Records: records}
		data, err := json.Marshal(out)
		if err != nil {
			return fmt.Errorf("encoding batch %d: %w", b.Seq, err)
		}
		id := record.MsgID(b.Sync, b.RunID, "transform", b.Seq, part)
		if err := bus.Publish(ctx, s.Plane.JS, bus.Deliver(p.run.Spec.Destination, part), data, id); err != nil {
			return err
		}
	}
	if len(final) > 0 {
		slot := record.TransformerSlot(p.run.Partitions)
		rb := record.ResultBatch{Sync: b.Sync, RunID: b.RunID, Seq: b.Seq, Partition: slot, Results: final}
		data, _ := json.Marshal(rb)
		id := record.MsgID(b.Sync, b.RunID, "results", b.Seq, slot)
		return bus.Publish(ctx, s.Plane.JS, bus.Results(b.Sync), data, id)
	}
	return nil
}

// countFanout adds the records a batch's transformation fanned out to the
// run before they are published, so reporting never sees the run complete
// while some of them are still on their way.
func (s *service) countFanout(ctx context.Context, b record.Batch, n int) error {
	_, err := s.Plane.Runs.Update(ctx, b.Sync, b.RunID, func(r *run.Run) error {
		if r.State.Terminal() || !r.MarkFanout(b.Seq) {
			return run.ErrSkip
		}
		r.Fanout += int64(n)
		return nil
	})
	return err
}

// stopRun fails a run whose transformation fails every record it is
// given: one clear error instead of millions of failed rows.
func (s *service) stopRun(ctx context.Context, b record.Batch, reason string) error {
	s.Log.Error().Str(logging.FieldSync, b.Sync).Str(logging.FieldRun, b.RunID).Str("reason", reason).
		Msg("stopping run: the transformation fails every record")
	_, err := s.Plane.Runs.Update(ctx, b.Sync, b.RunID, func(r *run.Run) error {
		if r.State.Terminal() {
			return run.ErrSkip
		}
		r.State, r.Error, r.PausedFrom = run.Failed, reason, ""
		return nil
	})
	return err
}

// transform maps each record, runs the transformation on the mapped
// records and sorts what comes out into lanes. Records whose mapping or
// transformation fails, and those the transformation drops, become final
// results; fanout counts the records added by fan-out. A non-empty verdict
// means the transformation has failed every record so far and the run
// must stop.
func (s *service) transform(ctx context.Context, p *runPlan, b record.Batch) (lanes [][]record.Record, final []record.Result, fanout int, verdict string) {
	lanes = make([][]record.Record, p.run.Partitions)
	route := func(rec record.Record) {
		part := Partition(rec.KeyEnc, p.run.Partitions)
		lanes[part] = append(lanes[part], rec)
	}
	var mapped []record.Record // in order, for the transformation
	for _, rec := range b.Records {
		if rec.Op == record.OpDelete {
			route(rec) // nothing to map or transform
			continue
		}
		data, err := p.mapper.Map(rec.Data)
		if err != nil {
			final = append(final, result(rec, record.Failed, err.Error()))
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
		return lanes, final, 0, ""
	}
	outs := p.js.Run(ctx, inputs(b, mapped))
	failed := 0
	for i, out := range outs {
		rec := mapped[i]
		s.logLines(ctx, b, rec, out.Logs)
		switch {
		case out.Err != nil:
			failed++
			final = append(final, result(rec, record.Failed, "transformation: "+out.Err.Error()))
		case len(out.Records) == 0:
			final = append(final, result(rec, record.Filtered, ""))
		default:
			// Fan-out: the copies share the key, so they take the same
			// lane, in the order the code returned them.
			for _, data := range out.Records {
				rec.Data = data
				route(rec)
			}
			fanout += len(out.Records) - 1
		}
	}
	verdict = p.probe.observe(len(outs), failed, firstError(outs))
	return lanes, final, fanout, verdict
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

func result(rec record.Record, st record.Status, reason string) record.Result {
	return record.Result{KeyEnc: rec.KeyEnc, Op: rec.Op, Change: rec.Change, Status: st, Error: reason}
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
