package differ

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/warehouse"
)

// The engines a run records (run.Run.Engine, snapshot.Pointer.Engine).
const (
	engineLocal     = string(config.EngineLocal)
	engineWarehouse = string(config.EngineWarehouse)
)

// computeDiff diffs the model against the committed snapshot with the
// sync's engine, leaving the keys in skip (quarantined) out, writing the
// change set object and the candidate snapshot (an object for the local
// engine, a table for the warehouse engine). It
// returns the engine used and the model's types (see checkTypes): a change
// of type makes it plan every row again.
//
// A snapshot committed by the other engine is carried over rather than
// thrown away, so a switch never resends everything nor loses a delete:
// the local engine copies the previous snapshot table into an object first,
// the warehouse engine loads the previous object into a table.
func (s *service) computeDiff(ctx context.Context, log zerolog.Logger, p plan, r *run.Run, skip map[string]bool) (string, diff.Stats, modelTypes, error) {
	src, err := s.OpenSource(ctx, p.src)
	if err != nil {
		return "", diff.Stats{}, modelTypes{}, source.MarkTransient(nil, fmt.Errorf("opening source %q: %w", p.src.Name, err))
	}
	defer src.Close()
	engine, err := chooseEngine(ctx, log, p, src)
	if err != nil {
		return "", diff.Stats{}, modelTypes{}, source.MarkTransient(src, err)
	}
	ptr, _, err := snapshot.LoadPointer(ctx, s.Plane.State, r.Sync)
	if err != nil {
		return "", diff.Stats{}, modelTypes{}, err
	}
	types, err := checkTypes(ctx, src, p.sync, ptr)
	if err != nil {
		return "", diff.Stats{}, modelTypes{}, source.MarkTransient(src, err)
	}
	opts := diff.Options{Skip: skip, ResendCommon: len(types.changes) > 0}
	model := source.Model{SQL: p.sync.Model.SQL, PrimaryKey: p.sync.Model.PrimaryKey}
	var stats diff.Stats
	if engine == engineWarehouse {
		stats, err = s.diffInWarehouse(ctx, src.(source.Warehouse), model, p.sync.Mode, opts, ptr, r)
	} else {
		stats, err = s.diffLocally(ctx, src, model, p.sync.Mode, opts, ptr, r)
	}
	return engine, stats, types, source.MarkTransient(src, err)
}

// chooseEngine resolves the sync's engine for this run. auto takes the
// faster engine for the source: the local engine for Postgres, where
// reading keys and hashes out is cheaper than writing them to a table
// (make bench BENCH_SCENARIOS=diff,second: the warehouse engine's diff
// took 2.1x the local engine's at 1M rows and 2.2x at 10M, and its whole
// second run 1.17x), and otherwise the warehouse engine when the source
// has one and can create tables in its snapshot schema (columnar warehouses
// over a network, where only the changed rows should leave), saying why
// when it cannot.
func chooseEngine(ctx context.Context, log zerolog.Logger, p plan, src source.Source) (string, error) {
	w, ok := src.(source.Warehouse)
	switch p.sync.DiffEngine() {
	case config.EngineLocal:
		return engineLocal, nil
	case config.EngineWarehouse:
		if !ok {
			return "", fmt.Errorf("engine warehouse: %s sources have no warehouse engine; use engine local or auto", p.src.Type)
		}
		if err := w.ProbeSchema(ctx); err != nil {
			return "", fmt.Errorf("engine warehouse: %w (grant the source's role CREATE on the snapshot schema, or use engine local)", err)
		}
		return engineWarehouse, nil
	}
	if !ok || p.src.Type == "postgres" {
		return engineLocal, nil
	}
	if err := w.ProbeSchema(ctx); err != nil {
		log.Info().Err(err).Msg("engine auto: the snapshot schema is not writable; diffing with the local engine")
		return engineLocal, nil
	}
	return engineWarehouse, nil
}

// changeSet starts writing the run's change set object.
func (s *service) changeSet(ctx context.Context, r *run.Run) *snapshot.Writer {
	return snapshot.Create(ctx, s.Plane.Snapshots, snapshot.AttemptName(r.Sync, r.ID, "changes", r.Claims), snapshot.ChangesPayload)
}

// diffLocally is the local engine: a merge of the model's keys and hashes
// with the previous snapshot object.
func (s *service) diffLocally(ctx context.Context, src source.Source, m source.Model, mode config.Mode, opts diff.Options,
	ptr snapshot.Pointer, r *run.Run) (diff.Stats, error) {
	prevObj := ptr.Object
	if ptr.InWarehouse() {
		var err error
		if prevObj, err = s.copyTable(ctx, src, ptr, r, len(m.PrimaryKey)); err != nil {
			return diff.Stats{}, err
		}
	}
	prev, err := snapshot.Open(ctx, s.Plane.Snapshots, prevObj, snapshot.SnapshotPayload)
	if err != nil {
		return diff.Stats{}, err
	}
	defer prev.Close()
	next := snapshot.Create(ctx, s.Plane.Snapshots, snapshot.AttemptName(r.Sync, r.ID, "snapshot", r.Claims), snapshot.SnapshotPayload)
	changes := s.changeSet(ctx, r)
	stats, err := diff.ComputeWith(ctx, src, m, mode, opts, prev, next, changes)
	if err != nil {
		next.Abort(err)
		changes.Abort(err)
		return stats, err
	}
	if err := next.Close(); err != nil {
		changes.Abort(err)
		return stats, err
	}
	return stats, changes.Close()
}

// copyTable copies the warehouse engine's committed snapshot table into
// the run's "previous" object, for the local engine to merge with.
func (s *service) copyTable(ctx context.Context, src source.Source, ptr snapshot.Pointer, r *run.Run, nkeys int) (string, error) {
	w, ok := src.(source.Warehouse)
	if !ok {
		return "", fmt.Errorf("the committed snapshot is table %s of the warehouse engine, which the source cannot read", ptr.Table)
	}
	name := snapshot.AttemptName(r.Sync, r.ID, "previous", r.Claims)
	out := snapshot.Create(ctx, s.Plane.Snapshots, name, snapshot.SnapshotPayload)
	if err := warehouse.Export(ctx, w, ptr.Table, nkeys, out); err != nil {
		out.Abort(err)
		return "", fmt.Errorf("copying snapshot table %s for the local engine: %w", ptr.Table, err)
	}
	return name, out.Close()
}

// diffInWarehouse is the warehouse engine: the run's snapshot and change
// tables, and the change set object the extractor walks.
func (s *service) diffInWarehouse(ctx context.Context, w source.Warehouse, m source.Model, mode config.Mode, opts diff.Options,
	ptr snapshot.Pointer, r *run.Run) (diff.Stats, error) {
	var prev warehouse.Previous
	if ptr.InWarehouse() {
		prev.Table = ptr.Table
	} else if ptr.Object != "" {
		obj, err := snapshot.Open(ctx, s.Plane.Snapshots, ptr.Object, snapshot.SnapshotPayload)
		if err != nil {
			return diff.Stats{}, err
		}
		defer obj.Close()
		prev.Object = obj
	}
	t, err := s.runTables(ctx, r)
	if err != nil {
		return diff.Stats{}, err
	}
	changes := s.changeSet(ctx, r)
	stats, err := warehouse.Diff(ctx, w, m, mode, opts, prev, t, changes)
	if err != nil {
		changes.Abort(err)
		return stats, err
	}
	return stats, changes.Close()
}

// movePointerInWarehouse commits a warehouse-engine run: its snapshot
// table, patched back to the previous snapshot's entries for the keys that
// failed, becomes the sync's snapshot.
func (s *service) movePointerInWarehouse(ctx context.Context, log zerolog.Logger, r *run.Run, prev snapshot.Pointer, rev uint64) error {
	keep, err := s.failedKeys(ctx, r)
	if errors.Is(err, run.ErrTooManyFailures) {
		log.Warn().Int("limit", s.MaxFailedKeys).Msg("too many failed records to patch the snapshot; keeping the previous one whole")
		return nil // the janitor drops the run's tables
	}
	if err != nil {
		return err
	}
	t, err := s.runTables(ctx, r)
	if err != nil {
		return err
	}
	next := snapshot.Pointer{RunID: r.ID, Engine: engineWarehouse, Table: t.Snapshot, Rows: r.ModelRows, CommittedAt: time.Now().UTC(),
		Columns: committedColumns(r, prev)}
	if !keep.empty() {
		src, err := s.openWarehouse(ctx, r.Spec.Source)
		if err != nil {
			return err
		}
		defer src.Close()
		prevTable := prev.Table
		if !prev.InWarehouse() {
			prevTable = t.Previous // the diff loaded the previous object there
		}
		n := len(r.Spec.Model.PrimaryKey)
		if next.Rows, err = warehouse.Patch(ctx, src, t, prevTable, n, keep.keep); err != nil {
			return err
		}
		if len(keep.uncertain) > 0 {
			if next.Rows, err = warehouse.MarkUncertain(ctx, src, t, n, keep.uncertain); err != nil {
				return err
			}
		}
	}
	if err := snapshot.StorePointer(ctx, s.Plane.State, r.Sync, next, rev); err != nil {
		return err
	}
	if prev.Object != "" {
		_ = s.Plane.Snapshots.Delete(ctx, prev.Object)
	}
	return nil
}

// runTables names a run's tables.
func (s *service) runTables(ctx context.Context, r *run.Run) (warehouse.Tables, error) {
	tag, err := warehouse.Tag(ctx, s.Plane.State)
	return warehouse.RunTables(tag, r.Sync, r.ID), err
}

// openWarehouse opens a source that must have the warehouse engine.
func (s *service) openWarehouse(ctx context.Context, name string) (source.Warehouse, error) {
	cfg, err := s.Plane.Configs.Source(ctx, name)
	if err != nil {
		return nil, err
	}
	src, err := s.OpenSource(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening source %q: %w", name, err)
	}
	w, ok := src.(source.Warehouse)
	if !ok {
		src.Close()
		return nil, fmt.Errorf("source %q has no warehouse engine", name)
	}
	return w, nil
}

// clean is the janitor: it drops the warehouse engine's tables in the
// source's snapshot schema that no run needs any more, those of runs that
// ended (committed, failed, cancelled, dry runs) or no longer exist, except
// the committed snapshots. Failing to clean fails nothing: the next commit
// tries again.
func (s *service) clean(ctx context.Context, log zerolog.Logger, sourceName string) {
	tag, err := warehouse.Tag(ctx, s.Plane.State)
	if err != nil {
		log.Warn().Err(err).Msg("janitor: cannot read the deployment's tag")
		return
	}
	w, err := s.openWarehouse(ctx, sourceName)
	if err != nil {
		log.Warn().Err(err).Msg("janitor: cannot open the source")
		return
	}
	defer w.Close()
	dropped, err := warehouse.Clean(ctx, w, tag,
		func(id string) (bool, error) { return s.runActive(ctx, id) },
		func() (map[string]bool, error) { return s.committedTables(ctx) })
	if err != nil {
		log.Warn().Err(err).Str("source", sourceName).Msg("janitor: cleaning the snapshot schema failed")
	}
	if len(dropped) > 0 {
		log.Info().Str("source", sourceName).Strs("tables", dropped).Msg("janitor: dropped tables no run needs")
	}
}

// runActive reports whether a run exists and has not ended.
func (s *service) runActive(ctx context.Context, id string) (bool, error) {
	r, err := s.Plane.Runs.Find(ctx, id)
	if errors.Is(err, run.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !r.State.Terminal(), nil
}

// committedTables are the warehouse engine's committed snapshot tables of
// every sync.
func (s *service) committedTables(ctx context.Context) (map[string]bool, error) {
	ptrs, err := s.pointers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range ptrs {
		if p.InWarehouse() {
			out[p.Table] = true
		}
	}
	return out, nil
}

// pointers reads every sync's snapshot pointer.
func (s *service) pointers(ctx context.Context) (map[string]snapshot.Pointer, error) {
	lister, err := s.Plane.State.ListKeysFiltered(ctx, "snapshot.*")
	if err != nil {
		return nil, fmt.Errorf("listing snapshot pointers: %w", err)
	}
	var syncs []string
	for k := range lister.Keys() {
		syncs = append(syncs, strings.TrimPrefix(k, "snapshot."))
	}
	out := map[string]snapshot.Pointer{}
	for _, sync := range syncs {
		p, _, err := snapshot.LoadPointer(ctx, s.Plane.State, sync)
		if err != nil {
			return nil, err
		}
		out[sync] = p
	}
	return out, nil
}

// cleanAtStart runs the janitor once on the sources of syncs whose
// snapshot is a warehouse table, for tables a crash left behind. Sources
// of syncs that never committed a warehouse snapshot are cleaned after
// their next commit.
func (s *service) cleanAtStart(ctx context.Context) {
	ptrs, err := s.pointers(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Warn().Err(err).Msg("janitor: reading snapshot pointers failed")
		}
		return
	}
	sources := map[string]bool{}
	for sync, p := range ptrs {
		if !p.InWarehouse() {
			continue
		}
		cfg, err := s.Plane.Configs.Sync(ctx, sync)
		if err == nil {
			sources[cfg.Source] = true
		}
	}
	for name := range sources {
		s.clean(ctx, s.Log, name)
	}
}
