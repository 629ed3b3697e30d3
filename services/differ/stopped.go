package differ

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/warehouse"
)

// errNotDrained hands back the settling of a stopped run that still has
// requests in flight.
var errNotDrained = errors.New("the run still has requests in flight")

// settleStopped ends a run that was cancelled or failed while delivering,
// once none of its requests is in flight (the scheduler announces it when
// run.Drained says so; this checks again).
//
// Some of its records may have reached the destination and some not, and
// nothing records which. The snapshot does not move, so the next run sends
// its adds and changes again, except in mirror mode: there a row it added
// would stay at the destination for good once the model drops it, since
// the next run would not know to delete it. So a mirror run's change-set
// keys are marked Uncertain in a new committed snapshot (the previous one
// otherwise): the next run sends each of them again, as an upsert while
// the row is in the model and as a delete once it is not. (Other modes
// send no deletes: their destination keeps rows the model drops anyway.)
func (s *service) settleStopped(ctx context.Context, log zerolog.Logger, r *run.Run) error {
	timeout := config.DefaultTimeout
	if dest, err := s.Plane.Configs.Destination(ctx, r.Spec.Destination); err == nil {
		if o, err := dest.Delivery(); err == nil {
			timeout = o.Timeout
		}
	}
	drained, err := run.Drained(ctx, s.Plane.State, r, timeout)
	if err != nil {
		return err
	}
	if !drained {
		return errNotDrained
	}
	keep := ""
	if r.ChangeSet != "" && !r.DryRun && r.Spec.Mode == config.ModeMirror {
		if keep, err = s.markUncertain(ctx, r); err != nil {
			return err
		}
	}
	if err := s.Plane.ForgetRun(ctx, r.Sync, r.ID, keep); err != nil {
		return err
	}
	r, err = s.Plane.Runs.Finish(ctx, r.Sync, r.ID)
	if err == nil {
		log.Info().Str("state", string(r.State)).Msg("run drained: none of its requests is in flight; its keys go again with the next run")
	}
	return err
}

// markUncertain commits the previous snapshot with the run's change set
// marked Uncertain, as a local-engine object (a warehouse-engine table is
// exported first; the next warehouse-engine run loads it back), and
// returns the object's name. It is idempotent: a pointer already naming
// the run is left as it is.
func (s *service) markUncertain(ctx context.Context, r *run.Run) (string, error) {
	ptr, rev, err := snapshot.LoadPointer(ctx, s.Plane.State, r.Sync)
	if err != nil {
		return "", err
	}
	if ptr.RunID == r.ID {
		return ptr.Object, nil
	}
	prevObj := ptr.Object
	if ptr.InWarehouse() {
		if prevObj, err = s.exportTable(ctx, r, ptr); err != nil {
			return "", err
		}
	}
	prev, err := snapshot.Open(ctx, s.Plane.Snapshots, prevObj, snapshot.SnapshotPayload)
	if err != nil {
		return "", err
	}
	defer prev.Close()
	changes, err := snapshot.Open(ctx, s.Plane.Snapshots, r.ChangeSet, snapshot.ChangesPayload)
	if err != nil {
		return "", err
	}
	defer changes.Close()
	name := snapshot.AttemptName(r.Sync, r.ID, "uncertain", r.DiffAttempt)
	out := snapshot.Create(ctx, s.Plane.Snapshots, name, snapshot.SnapshotPayload)
	rows, err := diff.MarkUncertain(prev, changes, out)
	if err != nil {
		out.Abort(err)
		return "", fmt.Errorf("marking the keys of run %s uncertain: %w", r.ID, err)
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	next := snapshot.Pointer{RunID: r.ID, Engine: engineLocal, Object: name, Rows: rows, CommittedAt: time.Now().UTC(), Columns: ptr.Columns}
	if err := snapshot.StorePointer(ctx, s.Plane.State, r.Sync, next, rev); err != nil {
		return "", err
	}
	if ptr.Object != "" {
		_ = s.Plane.Snapshots.Delete(ctx, ptr.Object)
	}
	return name, nil
}

// exportTable copies a warehouse-engine snapshot table into an object of
// the run.
func (s *service) exportTable(ctx context.Context, r *run.Run, ptr snapshot.Pointer) (string, error) {
	w, err := s.openWarehouse(ctx, r.Spec.Source)
	if err != nil {
		return "", source.MarkTransient(nil, err)
	}
	defer w.Close()
	name := snapshot.AttemptName(r.Sync, r.ID, "previous-table", r.DiffAttempt)
	out := snapshot.Create(ctx, s.Plane.Snapshots, name, snapshot.SnapshotPayload)
	if err := warehouse.Export(ctx, w, ptr.Table, len(r.Spec.Model.PrimaryKey), out); err != nil {
		out.Abort(err)
		return "", fmt.Errorf("copying snapshot table %s: %w", ptr.Table, err)
	}
	return name, out.Close()
}
