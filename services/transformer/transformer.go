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
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/mapper"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
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
}

// runPlan is what the transformer needs of a run, read once.
type runPlan struct {
	run    *run.Run
	mapper *mapper.Mapper
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
	s := &service{Deps: d, gate: run.NewGate(d.Plane.Runs, time.Second), plans: map[string]*runPlan{}}
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
	s.mu.Lock()
	if len(s.plans) > 256 {
		s.plans = map[string]*runPlan{}
	}
	s.plans[runID] = p
	s.mu.Unlock()
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
	if err != nil {
		return err
	}
	lanes, failed := s.transform(p, b)
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
	if len(failed) > 0 {
		slot := record.TransformerSlot(p.run.Partitions)
		rb := record.ResultBatch{Sync: b.Sync, RunID: b.RunID, Seq: b.Seq, Partition: slot, Results: failed}
		data, _ := json.Marshal(rb)
		id := record.MsgID(b.Sync, b.RunID, "results", b.Seq, slot)
		return bus.Publish(ctx, s.Plane.JS, bus.Results(b.Sync), data, id)
	}
	return nil
}

// transform maps each record and sorts it into its lane; records whose
// mapping fails become failed results.
func (s *service) transform(p *runPlan, b record.Batch) ([][]record.Record, []record.Result) {
	lanes := make([][]record.Record, p.run.Partitions)
	var failed []record.Result
	for _, rec := range b.Records {
		if rec.Op != record.OpDelete {
			data, err := p.mapper.Map(rec.Data)
			if err != nil {
				failed = append(failed, record.Result{KeyEnc: rec.KeyEnc, Op: rec.Op, Change: rec.Change, Status: record.Failed, Error: err.Error()})
				continue
			}
			rec.Data = data
		}
		part := Partition(rec.KeyEnc, p.run.Partitions)
		lanes[part] = append(lanes[part], rec)
	}
	return lanes, failed
}
