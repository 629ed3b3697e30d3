package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/source"
)

// Pointer names a sync's committed snapshot. It lives in the state bucket
// under "snapshot.<sync>" and moves only by compare-and-swap, when a run
// commits.
type Pointer struct {
	RunID string `json:"run_id"`
	// Engine is the diff engine that committed the snapshot: "local" (or
	// empty, before engines were recorded) for Object, "warehouse" for
	// Table, a table of the source's snapshot schema.
	Engine      string    `json:"engine,omitempty"`
	Table       string    `json:"table,omitempty"`
	Object      string    `json:"object"`
	Rows        int64     `json:"rows"`
	CommittedAt time.Time `json:"committed_at"`
	// Columns are the model's columns and types as the committing run
	// diffed them; nil for a snapshot committed before types were
	// recorded, whose types are unknown (see TypeChanges).
	Columns []source.Column `json:"columns,omitempty"`
}

func pointerKey(sync string) string { return "snapshot." + sync }

// LoadPointer reads a sync's pointer and its revision; a sync that never
// committed has the zero Pointer and revision 0.
func LoadPointer(ctx context.Context, kv jetstream.KeyValue, sync string) (Pointer, uint64, error) {
	e, err := kv.Get(ctx, pointerKey(sync))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Pointer{}, 0, nil
	}
	if err != nil {
		return Pointer{}, 0, fmt.Errorf("reading snapshot pointer of sync %q: %w", sync, err)
	}
	var p Pointer
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return Pointer{}, 0, fmt.Errorf("decoding snapshot pointer of sync %q: %w", sync, err)
	}
	return p, e.Revision(), nil
}

// StorePointer moves a sync's pointer, failing if it moved since revision
// (0: if it exists).
func StorePointer(ctx context.Context, kv jetstream.KeyValue, sync string, p Pointer, revision uint64) error {
	data, _ := json.Marshal(p)
	var err error
	if revision == 0 {
		_, err = kv.Create(ctx, pointerKey(sync), data)
	} else {
		_, err = kv.Update(ctx, pointerKey(sync), data, revision)
	}
	if err != nil {
		return fmt.Errorf("moving snapshot pointer of sync %q: %w", sync, err)
	}
	return nil
}

// DeletePointer removes a sync's pointer, failing if it moved since
// revision: the sync then has no committed snapshot, and its next run sends
// every row as an add (ebb sync reset).
func DeletePointer(ctx context.Context, kv jetstream.KeyValue, sync string, revision uint64) error {
	if err := kv.Delete(ctx, pointerKey(sync), jetstream.LastRevision(revision)); err != nil {
		return fmt.Errorf("deleting snapshot pointer of sync %q: %w", sync, err)
	}
	return nil
}

// InWarehouse reports whether the snapshot is a table of the warehouse
// engine.
func (p Pointer) InWarehouse() bool { return p.Engine == "warehouse" }

// ObjectName names a run's objects: kind is "snapshot", "changes",
// "committed" or "previous" (a warehouse snapshot copied for the local
// engine).
func ObjectName(sync, runID, kind string) string { return sync + "/" + runID + "/" + kind }

// AttemptName names an object of one diff attempt of a run (the run's
// claim count): an attempt that lost its claim writes and deletes only
// its own objects, never the winner's.
func AttemptName(sync, runID, kind string, attempt int) string {
	return ObjectName(sync, runID, fmt.Sprintf("%s.%d", kind, attempt))
}

// DeleteRun deletes a run's objects except those named in keep (the
// snapshot it committed).
func DeleteRun(ctx context.Context, obs jetstream.ObjectStore, sync, runID string, keep ...string) error {
	lister, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing the objects of run %s: %w", runID, err)
	}
	prefix := ObjectName(sync, runID, "")
	for _, info := range lister {
		if !strings.HasPrefix(info.Name, prefix) || slices.Contains(keep, info.Name) {
			continue
		}
		if err := obs.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return fmt.Errorf("deleting %s: %w", info.Name, err)
		}
	}
	return nil
}
