// Package differ is the service that starts and finishes runs. On
// ebb.run.requested it diffs the model against the sync's committed snapshot
// (the `local` engine) and announces the change set; on ebb.run.delivered,
// when every record has a final result, it commits the snapshot.
package differ

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
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
	// ClaimTTL is how long a differ's claim on a run lasts without
	// renewal: after a crash, another copy diffs the run after it.
	// Default 10s: a crash costs at most that before another copy goes on.
	ClaimTTL time.Duration
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
	if d.ClaimTTL <= 0 {
		d.ClaimTTL = 10 * time.Second
	}
	d.Log = d.Log.With().Str(logging.FieldService, "differ").Logger()
	cons, err := bus.Durable(ctx, d.Plane.JS, bus.StreamRuns, jetstream.ConsumerConfig{
		Durable:        "differ",
		FilterSubjects: []string{bus.RunRequested("*"), bus.RunDelivered("*")},
		MaxAckPending:  1024,
	})
	if err != nil {
		return err
	}
	s := &service{d}
	go s.cleanAtStart(ctx)
	return d.Plane.Bus.Work(ctx, cons, bus.WorkOptions{Workers: d.Workers}, d.Log, s.handle)
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
	if r.State.Stopping() {
		err := s.settleStopped(ctx, log, r)
		if errors.Is(err, errNotDrained) {
			return &bus.RetryError{Err: err, Delay: time.Second, Hold: true}
		}
		return err
	}
	if r.State.Over() {
		return nil
	}
	if strings.HasPrefix(msg.Subject(), "ebb.run.delivered.") {
		return s.commit(ctx, log, r)
	}
	return s.diff(ctx, log, r, bus.Delivered(msg))
}

// endDryRun ends a dry run without touching the snapshot or quarantine.
func (s *service) endDryRun(ctx context.Context, log zerolog.Logger, r *run.Run) error {
	if err := s.Plane.ForgetRun(ctx, r.Sync, r.ID); err != nil {
		return err
	}
	if _, err := s.Plane.Runs.Succeed(ctx, r.Sync, r.ID); err != nil {
		return err
	}
	log.Info().Msg("dry run ended; nothing committed")
	if r.Engine == engineWarehouse {
		s.clean(ctx, log, r.Spec.Source)
	}
	return nil
}

// fail ends a run with err; the snapshot is not moved.
func (s *service) fail(ctx context.Context, log zerolog.Logger, r *run.Run, err error) error {
	log.Error().Err(err).Msg("run failed")
	_, uerr := s.Plane.Runs.Fail(ctx, r.Sync, r.ID, err.Error())
	return uerr
}

// diff diffs a run; delivered counts the deliveries of its announcement,
// so a transient warehouse failure is retried source.TransientAttempts
// times before the run fails. One differ owns the diff (a claim in the
// run); another handed the run meanwhile hands it back, and takes it over
// only if the owner's lease runs out.
func (s *service) diff(ctx context.Context, log zerolog.Logger, r *run.Run, delivered uint64) error {
	owner := ulid.Make().String()
	r, err := s.Plane.Runs.Claim(ctx, r.Sync, r.ID, owner, run.Diffing, s.ClaimTTL)
	switch {
	case errors.Is(err, run.ErrClaimed):
		return &bus.RetryError{Err: err, Delay: s.ClaimTTL / 3, Hold: true}
	case errors.Is(err, run.ErrPhaseOver):
		return s.afterDiff(ctx, log, r)
	case err != nil:
		return err
	}
	lctx, stop := s.Plane.Runs.KeepClaim(ctx, r.Sync, r.ID, owner, s.ClaimTTL)
	log.Info().Int("attempt", r.Claims).Msg("diffing")
	advanced, err := s.diffClaimed(lctx, ctx, log, r, owner, delivered)
	lost, cause := lctx.Err() != nil, context.Cause(lctx) // before stop ends lctx too
	stop()
	if !advanced && lost && ctx.Err() == nil {
		// The claim was lost or the run stopped mid-diff: what this
		// attempt wrote is its own, and nobody will read it. (Once the run
		// advanced, its claim is gone by design and the objects are the
		// run's.)
		log.Warn().Err(cause).Msg("diff abandoned")
		s.deleteAttempt(context.WithoutCancel(ctx), r.Sync, r.ID, r.Claims)
		return nil
	}
	return err
}

// afterDiff handles an announcement of a run that is past its diff. What
// followed it may have been lost in a crash: the diffed announcement is
// made again, and a commit cut short (a run that planned nothing commits
// while handling this very announcement) is finished.
func (s *service) afterDiff(ctx context.Context, log zerolog.Logger, r *run.Run) error {
	switch r.State {
	case run.Extracting, run.Delivering:
		return run.Announce(ctx, s.Plane.Bus, bus.RunDiffed(r.Sync), r.ID, r.Sync, "diffed")
	case run.Committing:
		return s.commit(ctx, log, r)
	}
	return nil // paused (a resume announces it again), awaiting approval, over
}

// diffClaimed diffs a run under its claim (ctx ends if the claim is
// lost) and reports whether the run advanced past its diff; what follows
// the advance runs under parent, the claim being over by then.
func (s *service) diffClaimed(ctx, parent context.Context, log zerolog.Logger, r *run.Run, owner string, delivered uint64) (bool, error) {
	plan, err := s.prepare(ctx, r)
	if bus.IsTransient(err) {
		return false, err // NATS: handed back and tried again
	}
	if err != nil {
		return false, s.fail(ctx, log, r, err)
	}
	// Read once: the commit keeps the old snapshot entries of exactly these
	// keys, whatever `ebb sync retry` releases meanwhile.
	skip, err := quarantine.New(s.Plane.State).Quarantined(ctx, r.Sync)
	if err != nil {
		return false, err
	}
	quarantined, err := s.saveQuarantined(ctx, r, skip)
	if err != nil {
		return false, err
	}
	engine, stats, types, err := s.computeDiff(ctx, log, plan, r, skip)
	if err != nil {
		if ctx.Err() != nil {
			return false, err
		}
		s.deleteAttempt(ctx, r.Sync, r.ID, r.Claims)
		var transient *source.TransientError
		switch {
		case errors.As(err, &transient) && delivered < source.TransientAttempts:
			// Handed back: the redelivery diffs again from the start.
			log.Warn().Err(err).Uint64("attempt", delivered).Msg("the warehouse failed transiently; the diff will be retried")
		case !errors.As(err, &transient) && bus.IsTransient(err):
			// NATS went away (a restart, an election): not the run's fault.
			log.Warn().Err(err).Msg("NATS failed transiently; the diff will be retried")
		default:
			return false, s.fail(ctx, log, r, err)
		}
		_, _ = s.Plane.Runs.Release(ctx, r.Sync, r.ID, owner)
		return false, err
	}
	prev, _, err := snapshot.LoadPointer(ctx, s.Plane.State, r.Sync)
	if err != nil {
		return false, err
	}
	next, stop := run.Extracting, plan.sync.Safety.Check(prev.Rows, stats.Deletes, stats.Changes)
	if stop != "" && !r.DryRun { // a dry run reports the stop it would trip
		next = run.AwaitingApproval
	}
	attempt := r.Claims
	r, err = s.Plane.Runs.Advance(ctx, r.Sync, r.ID, owner, run.Diffing, next, func(r *run.Run) {
		r.SafetyStop = stop
		r.PreviousRows = prev.Rows
		r.Spec = plan.sync
		r.Partitions = plan.delivery.Partitions
		r.BatchSize = min(plan.delivery.BatchSize*plan.delivery.Partitions, 10_000)
		r.ModelRows = stats.Rows
		r.Quarantined = stats.Quarantined
		r.QuarantineSet = quarantined
		r.Planned = run.Planned{Adds: stats.Adds, Changes: stats.Changes, Deletes: stats.Deletes}
		r.Engine = engine
		r.Columns, r.TypeChanges = types.columns, types.changes
		r.Candidate = ""
		if engine == engineLocal {
			r.Candidate = snapshot.AttemptName(r.Sync, r.ID, "snapshot", attempt)
		}
		r.ChangeSet = snapshot.AttemptName(r.Sync, r.ID, "changes", attempt)
		r.DiffAttempt = attempt
	})
	if errors.Is(err, run.ErrPhaseOver) || errors.Is(err, run.ErrLostClaim) {
		// Cancelled while diffing, or taken over: nothing will read what
		// this attempt wrote.
		log.Info().Err(err).Msg("diff not used")
		s.deleteAttempt(ctx, r.Sync, r.ID, attempt)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ctx = parent
	log.Info().Str("engine", engine).Int64("rows", stats.Rows).Int64("adds", stats.Adds).Int64("changes", stats.Changes).
		Int64("deletes", stats.Deletes).Msg("diffed")
	if len(types.changes) > 0 {
		log.Warn().Strs(fieldTypeChanges, types.changes).Msg("columns changed type since the committed snapshot; every row is planned again")
	}
	switch {
	case r.Planned.Total() == 0:
		return true, s.commit(ctx, log, r)
	case r.Phase() == run.AwaitingApproval:
		log.Warn().Str("reason", stop).Msg("safety stop: the run waits for approval (ebb runs approve) before sending anything")
		return true, nil
	case r.State == run.Paused:
		return true, nil
	}
	return true, run.Announce(ctx, s.Plane.Bus, bus.RunDiffed(r.Sync), r.ID, r.Sync, "diffed")
}

// deleteAttempt removes the objects a diff attempt wrote (its warehouse
// tables are the janitor's).
func (s *service) deleteAttempt(ctx context.Context, sync, runID string, attempt int) {
	for _, kind := range []string{"snapshot", "changes", "previous", "quarantined"} {
		_ = s.Plane.Snapshots.Delete(ctx, snapshot.AttemptName(sync, runID, kind, attempt))
	}
}

// saveQuarantined writes the keys a run leaves out because they are
// quarantined, and returns the object's name ("" for none).
func (s *service) saveQuarantined(ctx context.Context, r *run.Run, skip map[string]bool) (string, error) {
	if len(skip) == 0 {
		return "", nil
	}
	keys := make([]record.Key, 0, len(skip))
	for k := range skip {
		keys = append(keys, record.Key(k))
	}
	slices.SortFunc(keys, record.Compare)
	name := snapshot.AttemptName(r.Sync, r.ID, "quarantined", r.Claims)
	w := snapshot.Create(ctx, s.Plane.Snapshots, name, snapshot.ChangesPayload)
	for _, k := range keys {
		if err := w.Write(k, []byte{0}); err != nil {
			w.Abort(err)
			return "", err
		}
	}
	return name, w.Close()
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
	r, committing, err := s.Plane.Runs.BeginCommit(ctx, r.Sync, r.ID)
	if err != nil || !committing {
		return err
	}
	if r.DryRun {
		return s.endDryRun(ctx, log, r)
	}
	prev, rev, err := snapshot.LoadPointer(ctx, s.Plane.State, r.Sync)
	if err != nil {
		return err
	}
	if prev.RunID != r.ID {
		if err := s.movePointer(ctx, log, r, prev, rev); err != nil {
			return err
		}
	}
	if err := s.recordStreaks(ctx, log, r); err != nil {
		return err
	}
	committed, _, err := snapshot.LoadPointer(ctx, s.Plane.State, r.Sync)
	if err != nil {
		return err
	}
	if err := s.Plane.ForgetRun(ctx, r.Sync, r.ID, committed.Object); err != nil {
		log.Warn().Err(err).Msg("cleaning up after the run")
	}
	if _, err := s.Plane.Runs.Succeed(ctx, r.Sync, r.ID); err != nil {
		return err
	}
	log.Info().Msg("run committed")
	if r.Engine == engineWarehouse || prev.InWarehouse() {
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
	if !keep.empty() {
		prevObj := prev.Object
		if prev.InWarehouse() {
			prevObj = snapshot.AttemptName(r.Sync, r.ID, "previous", r.DiffAttempt) // the diff's copy of the table
		}
		next.Object = snapshot.AttemptName(r.Sync, r.ID, "committed", r.DiffAttempt)
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
// records that did not reach the destination, and the keys the run left
// out because they were quarantined when it diffed (not those quarantined
// now: a key released meanwhile was not sent either).
func (s *service) failedKeys(ctx context.Context, r *run.Run) (commitKeys, error) {
	keep, err := s.quarantinedAtDiff(ctx, r)
	if err != nil {
		return commitKeys{}, err
	}
	failures, err := s.failures(ctx, r)
	if err != nil {
		return commitKeys{}, err
	}
	ck := commitKeys{keep: keep, uncertain: map[string]bool{}}
	for _, f := range failures {
		if f.Status == record.Failed && r.Spec.Mode == config.ModeMirror {
			// It may have reached the destination all the same (a timeout
			// after the destination took it): once the model drops the
			// row, a delete must follow (see diff.Uncertain).
			ck.uncertain[string(f.KeyEnc)] = true
			continue
		}
		ck.keep[string(f.KeyEnc)] = true
	}
	return ck, nil
}

// commitKeys are the keys a commit does not take from the run's
// candidate: keep (quarantined when the run diffed, failed, or gone from
// the model before extraction) keep their previous entry; uncertain
// (failed records of a mirror run) get diff.Uncertain.
type commitKeys struct{ keep, uncertain map[string]bool }

func (c commitKeys) empty() bool { return len(c.keep)+len(c.uncertain) == 0 }

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
func (s *service) patch(ctx context.Context, prevObj, candObj, outObj string, keys commitKeys) (int64, error) {
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
	if err := diff.CommitWith(prev, cand, keys.keep, keys.uncertain, out); err != nil {
		out.Abort(err)
		return 0, err
	}
	return out.Count(), out.Close()
}

// quarantinedAtDiff reads the keys the run left out as quarantined.
func (s *service) quarantinedAtDiff(ctx context.Context, r *run.Run) (map[string]bool, error) {
	keep := map[string]bool{}
	if r.QuarantineSet == "" {
		return keep, nil
	}
	rd, err := snapshot.Open(ctx, s.Plane.Snapshots, r.QuarantineSet, snapshot.ChangesPayload)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	for {
		ok, err := rd.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return keep, nil
		}
		keep[string(rd.Key())] = true
	}
}
