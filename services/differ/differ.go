// Package differ is the service that starts and finishes runs. On
// ebb.run.requested it diffs the model against the sync's committed snapshot
// (the `local` engine) and announces the change set; on ebb.run.delivered,
// when every record has a final result, it commits the snapshot.
package differ

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/quarantine"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
)

// Deps is what the differ needs.
type Deps struct {
	Plane      *plane.Plane
	Log        zerolog.Logger
	OpenSource func(context.Context, config.Source) (source.Source, error)
	// Workers is how many runs are diffed or committed at once.
	Workers int
	// MaxFailedKeys bounds the failed keys a commit holds in memory. A run
	// with more keeps its previous snapshot whole, so the next run resends
	// its whole change set: duplicates, never losses.
	MaxFailedKeys int
}

type service struct{ Deps }

// Run consumes run events until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if d.Workers <= 0 {
		d.Workers = 2
	}
	if d.MaxFailedKeys <= 0 {
		d.MaxFailedKeys = 1_000_000
	}
	d.Log = d.Log.With().Str(logging.FieldService, "differ").Logger()
	cons, err := bus.Durable(ctx, d.Plane.JS, bus.StreamRuns, jetstream.ConsumerConfig{
		Durable:        "differ",
		FilterSubjects: []string{bus.RunRequested("*"), bus.RunDelivered("*")},
		MaxAckPending:  64,
	})
	if err != nil {
		return err
	}
	s := &service{d}
	go s.cleanAtStart(ctx)
	return bus.Work(ctx, cons, bus.WorkOptions{Workers: d.Workers}, d.Log, s.handle)
}

func (s *service) handle(ctx context.Context, msg jetstream.Msg) error {
	var ev run.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		s.Log.Error().Err(err).Str("subject", msg.Subject()).Msg("dropping malformed run event")
		return nil
	}
	log := s.Log.With().Str(logging.FieldSync, ev.Sync).Str(logging.FieldRun, ev.RunID).Logger()
	r, err := s.Plane.Runs.Get(ctx, ev.Sync, ev.RunID)
	if errors.Is(err, run.ErrNotFound) {
		log.Warn().Msg("dropping event of unknown run")
		return nil
	}
	if err != nil {
		return err
	}
	if r.State.Terminal() {
		return nil
	}
	if strings.HasPrefix(msg.Subject(), "ebb.run.delivered.") {
		return s.commit(ctx, log, r)
	}
	return s.diff(ctx, log, r, bus.Delivered(msg))
}

// endDryRun ends a dry run without touching the snapshot or quarantine.
func (s *service) endDryRun(ctx context.Context, log zerolog.Logger, r *run.Run) error {
	s.deleteRunObjects(ctx, r)
	_, err := s.Plane.Runs.Update(ctx, r.Sync, r.ID, func(r *run.Run) error {
		if r.State.Terminal() {
			return run.ErrSkip
		}
		r.State = run.Succeeded
		if n := r.FailedRecords(); n > 0 {
			r.State = run.Failed
			r.Error = fmt.Sprintf("%d of %d records would fail", n, r.Planned.Total())
		}
		return nil
	})
	if err != nil {
		return err
	}
	log.Info().Msg("dry run ended; nothing committed")
	if r.Engine == engineWarehouse {
		s.clean(ctx, log, r.Spec.Source)
	}
	return nil
}

// deleteRunObjects removes a run's candidate snapshot and change set (its
// warehouse tables are the janitor's).
func (s *service) deleteRunObjects(ctx context.Context, r *run.Run) {
	for _, obj := range []string{snapshot.ObjectName(r.Sync, r.ID, "snapshot"), snapshot.ObjectName(r.Sync, r.ID, "changes"),
		snapshot.ObjectName(r.Sync, r.ID, "previous")} {
		_ = s.Plane.Snapshots.Delete(ctx, obj)
	}
}

// fail ends a run with err; the snapshot is not moved.
func (s *service) fail(ctx context.Context, log zerolog.Logger, r *run.Run, err error) error {
	log.Error().Err(err).Msg("run failed")
	_, uerr := s.Plane.Runs.Update(ctx, r.Sync, r.ID, func(r *run.Run) error {
		if r.State.Terminal() {
			return run.ErrSkip
		}
		r.State, r.Error = run.Failed, err.Error()
		return nil
	})
	return uerr
}

// diff diffs a run; delivered counts the deliveries of its announcement,
// so a transient warehouse failure is retried source.TransientAttempts
// times before the run fails.
func (s *service) diff(ctx context.Context, log zerolog.Logger, r *run.Run, delivered uint64) error {
	redelivered := delivered > 1
	switch r.State {
	case run.Extracting, run.Delivering:
		// Diffed already; the announcement may have been lost in a crash.
		return run.Announce(ctx, s.Plane.JS, bus.RunDiffed(r.Sync), r.ID, r.Sync, "diffed")
	case run.Committing, run.Paused:
		return nil // a resume announces the run again
	}
	claimed := false
	r, err := s.Plane.Runs.Update(ctx, r.Sync, r.ID, func(r *run.Run) error {
		// Only one differ diffs a run: the one that moves it out of
		// pending, or, when that one died, the one its message is
		// redelivered to. A second announcement of the run is ignored.
		claimed = r.State == run.Pending || (r.State == run.Diffing && redelivered)
		if !claimed {
			return run.ErrSkip
		}
		r.State = run.Diffing
		if r.StartedAt.IsZero() {
			r.StartedAt = time.Now().UTC()
		}
		return nil
	})
	if err != nil || !claimed {
		return err
	}
	log.Info().Msg("diffing")
	plan, err := s.prepare(ctx, r)
	if err != nil {
		return s.fail(ctx, log, r, err)
	}
	engine, stats, types, err := s.computeDiff(ctx, log, plan, r)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		var transient *source.TransientError
		if errors.As(err, &transient) && delivered < source.TransientAttempts {
			// Handed back: the redelivery diffs again from the start.
			log.Warn().Err(err).Uint64("attempt", delivered).Msg("the warehouse failed transiently; the diff will be retried")
			return err
		}
		return s.fail(ctx, log, r, err)
	}
	prev, _, err := snapshot.LoadPointer(ctx, s.Plane.State, r.Sync)
	if err != nil {
		return err
	}
	next, stop := run.Extracting, plan.sync.Safety.Check(prev.Rows, stats.Deletes, stats.Changes)
	if stop != "" && !r.DryRun { // a dry run reports the stop it would trip
		next = run.AwaitingApproval
	}
	advanced := false
	r, err = s.Plane.Runs.Update(ctx, r.Sync, r.ID, func(r *run.Run) error {
		// A run paused meanwhile stays paused, ready to extract on resume.
		if advanced = r.Advance(run.Diffing, next); !advanced {
			return run.ErrSkip
		}
		r.SafetyStop = stop
		r.PreviousRows = prev.Rows
		r.Spec = plan.sync
		r.Partitions = plan.delivery.Partitions
		r.BatchSize = min(plan.delivery.BatchSize*plan.delivery.Partitions, 10_000)
		r.ModelRows = stats.Rows
		r.Quarantined = stats.Quarantined
		r.Planned = run.Planned{Adds: stats.Adds, Changes: stats.Changes, Deletes: stats.Deletes}
		r.Engine = engine
		r.Columns, r.TypeChanges = types.columns, types.changes
		r.Candidate = ""
		if engine == engineLocal {
			r.Candidate = snapshot.ObjectName(r.Sync, r.ID, "snapshot")
		}
		r.ChangeSet = snapshot.ObjectName(r.Sync, r.ID, "changes")
		return nil
	})
	if err != nil {
		return err
	}
	if !advanced {
		// Cancelled while diffing: nothing will read what the diff wrote.
		s.deleteRunObjects(ctx, r)
		return nil
	}
	log.Info().Str("engine", engine).Int64("rows", stats.Rows).Int64("adds", stats.Adds).Int64("changes", stats.Changes).
		Int64("deletes", stats.Deletes).Msg("diffed")
	if len(types.changes) > 0 {
		log.Warn().Strs(fieldTypeChanges, types.changes).Msg("columns changed type since the committed snapshot; every row is planned again")
	}
	if r.Planned.Total() == 0 {
		return s.commit(ctx, log, r)
	}
	if r.Phase() == run.AwaitingApproval {
		log.Warn().Str("reason", stop).Msg("safety stop: the run waits for approval (ebb runs approve) before sending anything")
		return nil
	}
	if r.State == run.Paused {
		return nil
	}
	return run.Announce(ctx, s.Plane.JS, bus.RunDiffed(r.Sync), r.ID, r.Sync, "diffed")
}

// plan is what a run works from, read from the config store at its start.
type plan struct {
	sync     config.Sync
	src      config.Source
	delivery config.DeliveryOptions
}

func (s *service) prepare(ctx context.Context, r *run.Run) (plan, error) {
	var p plan
	var err error
	if p.sync, err = s.Plane.Configs.Sync(ctx, r.Sync); err != nil {
		return p, err
	}
	if p.src, err = s.Plane.Configs.Source(ctx, p.sync.Source); err != nil {
		return p, err
	}
	dest, err := s.Plane.Configs.Destination(ctx, p.sync.Destination)
	if err != nil {
		return p, err
	}
	p.delivery, err = dest.Delivery()
	return p, err
}

// commit moves the sync's snapshot pointer to what the run delivered and
// ends the run. Every step is idempotent, so a redelivered event or a crash
// halfway is harmless.
func (s *service) commit(ctx context.Context, log zerolog.Logger, r *run.Run) error {
	committing := false
	r, err := s.Plane.Runs.Update(ctx, r.Sync, r.ID, func(r *run.Run) error {
		committing = r.State == run.Committing
		if committing || r.State.Terminal() {
			return run.ErrSkip // resuming a commit a crash cut short, or cancelled
		}
		if r.Final() < r.Planned.Total() {
			return fmt.Errorf("run %s has %d of %d final results: not ready to commit", r.ID, r.Final(), r.Planned.Total())
		}
		// A run paused after its last record was delivered commits: that
		// sends nothing, and the pause still holds the sync's schedule.
		r.State, r.PausedFrom, committing = run.Committing, "", true
		return nil
	})
	if err != nil || !committing {
		return err
	}
	if r.DryRun {
		return s.endDryRun(ctx, log, r)
	}
	ptr, rev, err := snapshot.LoadPointer(ctx, s.Plane.State, r.Sync)
	if err != nil {
		return err
	}
	if ptr.RunID != r.ID {
		if err := s.movePointer(ctx, log, r, ptr, rev); err != nil {
			return err
		}
	}
	if err := s.recordStreaks(ctx, log, r); err != nil {
		return err
	}
	_ = s.Plane.Snapshots.Delete(ctx, r.ChangeSet)
	_ = s.Plane.Snapshots.Delete(ctx, snapshot.ObjectName(r.Sync, r.ID, "previous"))
	_, err = s.Plane.Runs.Update(ctx, r.Sync, r.ID, func(r *run.Run) error {
		if r.State.Terminal() {
			return run.ErrSkip
		}
		r.State = run.Succeeded
		if n := r.FailedRecords(); n > 0 {
			r.State = run.Failed
			r.Error = fmt.Sprintf("%d of %d records failed; the next run sends them again", n, r.Planned.Total())
		}
		return nil
	})
	if err != nil {
		return err
	}
	log.Info().Msg("run committed")
	if r.Engine == engineWarehouse || ptr.InWarehouse() {
		// Now that the run is over, its change table and the snapshot it
		// replaced are no one's.
		s.clean(ctx, log, r.Spec.Source)
	}
	return nil
}

func (s *service) movePointer(ctx context.Context, log zerolog.Logger, r *run.Run, prev snapshot.Pointer, rev uint64) error {
	if r.Engine == engineWarehouse {
		return s.movePointerInWarehouse(ctx, log, r, prev, rev)
	}
	keep, err := s.failedKeys(ctx, r)
	if errors.Is(err, run.ErrTooManyFailures) {
		log.Warn().Int("limit", s.MaxFailedKeys).Msg("too many failed records to patch the snapshot; keeping the previous one whole")
		_ = s.Plane.Snapshots.Delete(ctx, r.Candidate)
		return nil
	}
	if err != nil {
		return err
	}
	next := snapshot.Pointer{RunID: r.ID, Engine: engineLocal, Object: r.Candidate, Rows: r.ModelRows, CommittedAt: time.Now().UTC(),
		Columns: committedColumns(r, prev)}
	if len(keep) > 0 {
		prevObj := prev.Object
		if prev.InWarehouse() {
			prevObj = snapshot.ObjectName(r.Sync, r.ID, "previous") // the diff's copy of the table
		}
		next.Object = snapshot.ObjectName(r.Sync, r.ID, "committed")
		if next.Rows, err = s.patch(ctx, prevObj, r.Candidate, next.Object, keep); err != nil {
			return err
		}
	}
	if err := snapshot.StorePointer(ctx, s.Plane.State, r.Sync, next, rev); err != nil {
		return err
	}
	for _, obj := range []string{prev.Object, r.Candidate} {
		if obj != "" && obj != next.Object {
			_ = s.Plane.Snapshots.Delete(ctx, obj)
		}
	}
	return nil
}

// failedKeys returns the keys whose snapshot entry must stay as it was:
// records that did not reach the destination, and quarantined keys.
func (s *service) failedKeys(ctx context.Context, r *run.Run) (map[string]bool, error) {
	keep, err := quarantine.New(s.Plane.State).Quarantined(ctx, r.Sync)
	if err != nil {
		return nil, err
	}
	failures, err := s.failures(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, f := range failures {
		keep[string(f.KeyEnc)] = true
	}
	return keep, nil
}

// failures reads the run's failed and vanished records.
func (s *service) failures(ctx context.Context, r *run.Run) ([]record.Result, error) {
	if r.FailedRecords() == 0 && r.Adds.Vanished+r.Changes.Vanished+r.Deletes.Vanished == 0 {
		return nil, nil
	}
	return run.Failures(ctx, s.Plane.JS, r.Sync, r.ID, s.MaxFailedKeys)
}

// recordStreaks counts this run's failures towards quarantine.
func (s *service) recordStreaks(ctx context.Context, log zerolog.Logger, r *run.Run) error {
	failures, err := s.failures(ctx, r)
	if errors.Is(err, run.ErrTooManyFailures) {
		return nil // too many to track one by one; they are all resent anyway
	}
	if err != nil {
		return err
	}
	n, err := quarantine.New(s.Plane.State).Record(ctx, r.Sync, r.ID, failures, r.Spec.Quarantine())
	if n > 0 {
		log.Warn().Int("records", n).Int("after_runs", r.Spec.Quarantine()).Msg("quarantined records that keep failing")
	}
	return err
}

// patch writes the committed snapshot: the candidate, with failed keys
// restored from the previous snapshot.
func (s *service) patch(ctx context.Context, prevObj, candObj, outObj string, keep map[string]bool) (int64, error) {
	prev, err := snapshot.Open(ctx, s.Plane.Snapshots, prevObj, snapshot.SnapshotPayload)
	if err != nil {
		return 0, err
	}
	defer prev.Close()
	cand, err := snapshot.Open(ctx, s.Plane.Snapshots, candObj, snapshot.SnapshotPayload)
	if err != nil {
		return 0, err
	}
	defer cand.Close()
	out := snapshot.Create(ctx, s.Plane.Snapshots, outObj, snapshot.SnapshotPayload)
	if err := diff.Commit(prev, cand, keep, out); err != nil {
		out.Abort(err)
		return 0, err
	}
	return out.Count(), out.Close()
}
