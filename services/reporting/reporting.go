// Package reporting is the service that turns per-record results into run
// counts. It keeps failed records queryable by run, counts each result batch
// once (a bitmap in the run guards against redelivery), and when every
// planned record has a final result it announces ebb.run.delivered, on
// which the differ commits the snapshot.
package reporting

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
)

// Deps is what reporting needs.
type Deps struct {
	Plane   *plane.Plane
	Log     zerolog.Logger
	Workers int
	// SlowRunCheck is how often active runs are checked for slow_run
	// alerts; default 5s.
	SlowRunCheck time.Duration
}

type service struct{ Deps }

// Run consumes results until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if d.Workers <= 0 {
		d.Workers = 4
	}
	if d.SlowRunCheck <= 0 {
		d.SlowRunCheck = 5 * time.Second
	}
	d.Log = d.Log.With().Str(logging.FieldService, "reporting").Logger()
	cons, err := bus.Durable(ctx, d.Plane.JS, bus.StreamResults, jetstream.ConsumerConfig{
		Durable:       "reporting",
		FilterSubject: bus.Results("*"),
		MaxAckPending: d.Workers * 16,
	})
	if err != nil {
		return err
	}
	s := &service{d}
	alerts := &alerter{plane: d.Plane, log: d.Log, client: &http.Client{Timeout: 10 * time.Second}, slowEvery: d.SlowRunCheck}
	alertsDone := make(chan error, 1)
	go func() { alertsDone <- alerts.run(ctx) }()
	err = d.Plane.Bus.Work(ctx, cons, bus.WorkOptions{Workers: d.Workers}, d.Log, s.handle)
	if aerr := <-alertsDone; err == nil && ctx.Err() == nil {
		err = aerr
	}
	return err
}

func (s *service) handle(ctx context.Context, msg jetstream.Msg) error {
	body, err := s.Plane.Bus.Body(ctx, msg)
	if err != nil {
		return err
	}
	rb, err := record.DecodeResults(body)
	if err != nil {
		s.Log.Error().Err(err).Msg("dropping malformed result batch")
		return nil
	}
	if err := run.RecordFailures(ctx, s.Plane.Bus, rb); err != nil {
		return err
	}
	if err := run.RecordHistory(ctx, s.Plane.Bus, rb); err != nil {
		return err
	}
	r, err := s.Plane.Runs.Get(ctx, rb.Sync, rb.RunID)
	if errors.Is(err, run.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	index := record.ResultIndex(rb.Seq, rb.Partition, r.Partitions)
	r, _, err = s.Plane.Runs.CountResults(ctx, rb.Sync, rb.RunID, index, rb.Results, rb.Retries)
	if err != nil {
		return err
	}
	if !r.State.Over() && r.Final() >= r.Planned.Total() {
		// Announced again on every redelivery: the message id makes it once.
		return run.Announce(ctx, s.Plane.Bus, bus.RunDelivered(r.Sync), r.ID, r.Sync, "delivered")
	}
	return nil
}
