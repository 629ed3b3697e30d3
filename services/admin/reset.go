package admin

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/warehouse"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// Log fields of a reset.
const (
	fieldTable  = "table"
	fieldObject = "object"
)

// ResetSync implements AdminService. It holds the sync's active slot while
// it drops the snapshot, so no run diffs against what it drops or commits
// over its removal.
func (s *server) ResetSync(ctx context.Context, req *adminv1.ResetSyncRequest) (*adminv1.ResetSyncResponse, error) {
	name := req.GetSync()
	sy, err := s.d.Configs.Sync(ctx, name)
	if err != nil {
		return nil, toStatus(err)
	}
	release, err := s.d.Runs.Hold(ctx, name)
	if errors.Is(err, run.ErrActive) {
		active, _ := s.d.Runs.ActiveID(ctx, name)
		return nil, status.Errorf(codes.FailedPrecondition,
			"sync %q has an active run %s: wait for it to end, or cancel it (ebb runs cancel %s), then reset", name, active, active)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	defer func() {
		if err := release(context.WithoutCancel(ctx)); err != nil {
			s.log.Warn().Err(err).Str(logging.FieldSync, name).Msg("releasing the sync's active slot after a reset")
		}
	}()
	ptr, rev, err := snapshot.LoadPointer(ctx, s.d.State, name)
	if err != nil {
		return nil, toStatus(err)
	}
	if rev == 0 {
		return &adminv1.ResetSyncResponse{}, nil // nothing committed yet
	}
	// The pointer goes first: a crash after it leaves an object or a
	// table no one names (the janitor drops such tables), never a
	// pointer to a missing snapshot.
	if err := snapshot.DeletePointer(ctx, s.d.State, name, rev); err != nil {
		return nil, toStatus(err)
	}
	log := s.log.Info().Str(logging.FieldSync, name).Str(logging.FieldRun, ptr.RunID)
	if ptr.InWarehouse() {
		s.dropTable(ctx, sy, ptr.Table)
		log = log.Str(fieldTable, ptr.Table)
	}
	if ptr.Object != "" {
		s.deleteObject(ctx, name, ptr.Object)
		log = log.Str(fieldObject, ptr.Object)
	}
	log.Msg("sync reset: its committed snapshot was dropped")
	return &adminv1.ResetSyncResponse{Dropped: true, RunId: ptr.RunID, Engine: engineOf(ptr), Rows: ptr.Rows,
		CommittedAt: timestamppb.New(ptr.CommittedAt)}, nil
}

// engineOf names the engine that committed a snapshot; pointers written
// before engines were recorded are the local engine's.
func engineOf(p snapshot.Pointer) string {
	if p.Engine == "" {
		return string(config.EngineLocal)
	}
	return p.Engine
}

// deleteObject removes a dropped snapshot's object. A failure only costs
// space: nothing names the object any more.
func (s *server) deleteObject(ctx context.Context, sync, name string) {
	store, err := s.d.JS.ObjectStore(ctx, bus.ObjectSnapshots)
	if err == nil {
		err = store.Delete(ctx, name)
	}
	if err != nil {
		s.log.Warn().Err(err).Str(logging.FieldSync, sync).Str(fieldObject, name).Msg("deleting a reset sync's snapshot object")
	}
}

// dropTable drops a dropped snapshot's table in the source's snapshot
// schema. When it cannot (no warehouse drivers here, the warehouse
// unreachable), the differ's janitor drops it after the next warehouse
// engine commit on the source: no pointer names it any more.
func (s *server) dropTable(ctx context.Context, sy config.Sync, table string) {
	if err := s.dropTableIn(ctx, sy.Source, table); err != nil {
		s.log.Warn().Err(err).Str(logging.FieldSync, sy.Name).Str(fieldTable, table).
			Msg("dropping a reset sync's snapshot table; the janitor drops it after a later commit")
	}
}

func (s *server) dropTableIn(ctx context.Context, sourceName, table string) error {
	if s.d.OpenSource == nil {
		return errors.New("this admin API opens no warehouses")
	}
	cfg, err := s.d.Configs.Source(ctx, sourceName)
	if err != nil {
		return err
	}
	src, err := s.d.OpenSource(ctx, cfg)
	if err != nil {
		return fmt.Errorf("opening source %q: %w", sourceName, err)
	}
	defer src.Close()
	w, ok := src.(source.Warehouse)
	if !ok {
		return fmt.Errorf("source %q has no warehouse engine", sourceName)
	}
	return warehouse.Drop(ctx, w, table)
}
