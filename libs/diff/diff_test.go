package diff_test

import (
	"context"
	"crypto/md5"
	"fmt"
	"math/rand"
	"sort"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
)

// tableSource serves an in-memory table in key order. The merge logic is
// what is under test here; the warehouse scans have their own suite.
type tableSource struct{ rows map[int64]string }

func (s tableSource) keys() []int64 {
	keys := make([]int64, 0, len(s.rows))
	for k := range s.rows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

func (s tableSource) Columns(context.Context, string) ([]source.Column, error) { return nil, nil }
func (s tableSource) ScanRows(context.Context, source.Model, record.Key, source.RowFunc) error {
	return nil
}
func (s tableSource) Close() error { return nil }
func (s tableSource) ScanHashes(_ context.Context, _ source.Model, fn source.HashFunc) error {
	for _, k := range s.keys() {
		h := md5.Sum([]byte(s.rows[k]))
		if err := fn(record.AppendInt(nil, k), h[:]); err != nil {
			return err
		}
	}
	return nil
}

type store struct {
	t   *testing.T
	obs jetstream.ObjectStore
	n   int
}

func newStore(t *testing.T) *store {
	ns := natstest.Start(t)
	obs, err := ns.JS.ObjectStore(context.Background(), bus.ObjectSnapshots)
	require.NoError(t, err)
	return &store{t: t, obs: obs}
}

func (s *store) name() string { s.n++; return fmt.Sprintf("obj%d", s.n) }

// diffOnce diffs table against the snapshot object prev and returns the
// candidate object, the change set by key, and the stats.
func (s *store) diffOnce(table map[int64]string, prev string, mode config.Mode) (string, map[int64]record.Change, diff.Stats) {
	return s.diffWith(table, prev, mode, diff.Options{})
}

// diffWith is diffOnce with options.
func (s *store) diffWith(table map[int64]string, prev string, mode config.Mode, opts diff.Options) (string, map[int64]record.Change, diff.Stats) {
	ctx := context.Background()
	pr, err := snapshot.Open(ctx, s.obs, prev, snapshot.SnapshotPayload)
	require.NoError(s.t, err)
	defer pr.Close()
	candName, changesName := s.name(), s.name()
	next := snapshot.Create(ctx, s.obs, candName, snapshot.SnapshotPayload)
	changes := snapshot.Create(ctx, s.obs, changesName, snapshot.ChangesPayload)
	st, err := diff.ComputeWith(ctx, tableSource{table}, source.Model{}, mode, opts, pr, next, changes)
	require.NoError(s.t, err)
	require.NoError(s.t, next.Close())
	require.NoError(s.t, changes.Close())
	return candName, s.readChanges(changesName), st
}

func (s *store) readChanges(name string) map[int64]record.Change {
	r, err := snapshot.Open(context.Background(), s.obs, name, snapshot.ChangesPayload)
	require.NoError(s.t, err)
	defer r.Close()
	out := map[int64]record.Change{}
	for {
		ok, err := r.Next()
		require.NoError(s.t, err)
		if !ok {
			return out
		}
		parts, err := r.Key().Parts()
		require.NoError(s.t, err)
		out[parts[0].(int64)] = record.Change(r.Value()[0])
	}
}

func TestComputeMatchesNaiveDiff(t *testing.T) {
	s := newStore(t)
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 20; round++ {
		before := map[int64]string{}
		for i := 0; i < rng.Intn(300); i++ {
			before[rng.Int63n(1000)-500] = fmt.Sprint(rng.Intn(5))
		}
		after := map[int64]string{}
		for k, v := range before {
			switch rng.Intn(10) {
			case 0: // deleted
			case 1:
				after[k] = v + "x"
			default:
				after[k] = v
			}
		}
		for i := 0; i < rng.Intn(50); i++ {
			after[rng.Int63n(1000)-500] = "new"
		}
		prev, _, _ := s.diffOnce(before, "", config.ModeMirror)
		_, got, st := s.diffOnce(after, prev, config.ModeMirror)

		want := map[int64]record.Change{}
		for k, v := range after {
			old, ok := before[k]
			switch {
			case !ok:
				want[k] = record.Added
			case old != v:
				want[k] = record.Changed
			}
		}
		for k := range before {
			if _, ok := after[k]; !ok {
				want[k] = record.Deleted
			}
		}
		require.Equal(t, want, got, "round %d", round)
		require.Equal(t, int64(len(after)), st.Rows)
		require.Equal(t, int64(len(want)), st.Adds+st.Changes+st.Deletes)
	}
}

func TestModesFilterChanges(t *testing.T) {
	s := newStore(t)
	prev, _, _ := s.diffOnce(map[int64]string{1: "a", 2: "b", 3: "c"}, "", config.ModeMirror)
	now := map[int64]string{1: "a", 2: "B", 4: "d"}
	cases := map[config.Mode]map[int64]record.Change{
		config.ModeMirror: {2: record.Changed, 3: record.Deleted, 4: record.Added},
		config.ModeUpsert: {2: record.Changed, 4: record.Added},
		config.ModeUpdate: {2: record.Changed},
		config.ModeInsert: {4: record.Added},
		config.ModeAll:    {1: diff.Unchanged, 2: record.Changed, 4: record.Added},
	}
	for mode, want := range cases {
		_, got, _ := s.diffOnce(now, prev, mode)
		require.Equal(t, want, got, "mode %s", mode)
	}
}

// ResendCommon (a column changed type) plans every key in both the model
// and the snapshot as changed, unchanged hashes included, and the mode
// still filters what is sent; skipped keys stay out.
func TestResendCommonPlansEveryCommonKeyAsChanged(t *testing.T) {
	s := newStore(t)
	prev, _, _ := s.diffOnce(map[int64]string{1: "a", 2: "b", 3: "c", 5: "e"}, "", config.ModeMirror)
	now := map[int64]string{1: "a", 2: "B", 4: "d", 5: "e"}
	resend := diff.Options{ResendCommon: true}
	cases := map[config.Mode]map[int64]record.Change{
		config.ModeMirror: {1: record.Changed, 2: record.Changed, 3: record.Deleted, 4: record.Added, 5: record.Changed},
		config.ModeUpsert: {1: record.Changed, 2: record.Changed, 4: record.Added, 5: record.Changed},
		config.ModeUpdate: {1: record.Changed, 2: record.Changed, 5: record.Changed},
		config.ModeInsert: {4: record.Added},
		config.ModeAll:    {1: record.Changed, 2: record.Changed, 4: record.Added, 5: record.Changed},
	}
	for mode, want := range cases {
		_, got, _ := s.diffWith(now, prev, mode, resend)
		require.Equal(t, want, got, "mode %s", mode)
	}

	resend.Skip = map[string]bool{string(record.AppendInt(nil, 5)): true}
	_, got, st := s.diffWith(now, prev, config.ModeMirror, resend)
	require.Equal(t, map[int64]record.Change{1: record.Changed, 2: record.Changed, 3: record.Deleted, 4: record.Added}, got)
	require.EqualValues(t, 1, st.Quarantined)
	require.EqualValues(t, 2, st.Changes)
}

func TestCommitKeepsOldStateOfFailedKeys(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	before := map[int64]string{1: "a", 2: "b", 3: "c"}
	after := map[int64]string{1: "A", 2: "b", 4: "d", 5: "e"}
	prev, _, _ := s.diffOnce(before, "", config.ModeMirror)
	cand, _, _ := s.diffOnce(after, prev, config.ModeMirror)

	// 1 (change), 3 (delete) and 4 (add) failed; 5 (add) was delivered.
	keep := map[string]bool{}
	for _, k := range []int64{1, 3, 4} {
		keep[string(record.AppendInt(nil, k))] = true
	}
	pr, err := snapshot.Open(ctx, s.obs, prev, snapshot.SnapshotPayload)
	require.NoError(t, err)
	cr, err := snapshot.Open(ctx, s.obs, cand, snapshot.SnapshotPayload)
	require.NoError(t, err)
	committed := s.name()
	out := snapshot.Create(ctx, s.obs, committed, snapshot.SnapshotPayload)
	require.NoError(t, diff.Commit(pr, cr, keep, out))
	require.NoError(t, out.Close())

	// The next run sees exactly the failed records again.
	_, got, _ := s.diffOnce(after, committed, config.ModeMirror)
	require.Equal(t, map[int64]record.Change{1: record.Changed, 3: record.Deleted, 4: record.Added}, got)
}

func TestDuplicateAndNullKeysFail(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	src := dupSource{}
	pr, _ := snapshot.Open(ctx, s.obs, "", snapshot.SnapshotPayload)
	next := snapshot.Create(ctx, s.obs, s.name(), snapshot.SnapshotPayload)
	changes := snapshot.Create(ctx, s.obs, s.name(), snapshot.ChangesPayload)
	_, err := diff.Compute(ctx, src, source.Model{}, config.ModeMirror, pr, next, changes)
	next.Abort(err)
	changes.Abort(err)
	var keyErr *diff.KeyError
	require.ErrorAs(t, err, &keyErr)
	require.Equal(t, "model has 2 duplicate primary keys (first: 2) and 1 rows with a NULL in the primary key (first: NULL); nothing was sent", err.Error())
}

type dupSource struct{ tableSource }

func (dupSource) ScanHashes(_ context.Context, _ source.Model, fn source.HashFunc) error {
	h := make([]byte, 16)
	for _, k := range []record.Key{record.AppendNull(nil), record.AppendInt(nil, 1), record.AppendInt(nil, 2),
		record.AppendInt(nil, 2), record.AppendInt(nil, 2), record.AppendInt(nil, 3)} {
		if err := fn(k, h); err != nil {
			return err
		}
	}
	return nil
}

// A mirror run that stopped while delivering leaves its change set's keys
// Uncertain: the next run sends each of them again, as an upsert while its
// row is in the model and as a delete once it is not, whatever the stopped
// run managed to deliver; the other keys keep their committed state.
func TestUncertainKeysAreSentAgain(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	before := map[int64]string{1: "a", 2: "b", 3: "c"}
	stopped := map[int64]string{1: "A", 2: "b", 4: "d", 5: "e"} // changes 1, deletes 3, adds 4 and 5
	prev, _, _ := s.diffOnce(before, "", config.ModeMirror)

	pr, err := snapshot.Open(ctx, s.obs, prev, snapshot.SnapshotPayload)
	require.NoError(t, err)
	cand, changes := s.name(), s.name()
	cw := snapshot.Create(ctx, s.obs, cand, snapshot.SnapshotPayload)
	chw := snapshot.Create(ctx, s.obs, changes, snapshot.ChangesPayload)
	_, err = diff.ComputeWith(ctx, tableSource{stopped}, source.Model{}, config.ModeMirror, diff.Options{}, pr, cw, chw)
	require.NoError(t, err)
	require.NoError(t, cw.Close())
	require.NoError(t, chw.Close())
	pr.Close()

	pr, err = snapshot.Open(ctx, s.obs, prev, snapshot.SnapshotPayload)
	require.NoError(t, err)
	defer pr.Close()
	chr, err := snapshot.Open(ctx, s.obs, changes, snapshot.ChangesPayload)
	require.NoError(t, err)
	defer chr.Close()
	marked := s.name()
	out := snapshot.Create(ctx, s.obs, marked, snapshot.SnapshotPayload)
	n, err := diff.MarkUncertain(pr, chr, out)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	require.EqualValues(t, 5, n, "2 as it was, 1, 3, 4 and 5 uncertain")

	// Meanwhile the model dropped 4 and brought 3 back; 2 did not change.
	now := map[int64]string{1: "A", 2: "b", 3: "c", 5: "e"}
	_, got, _ := s.diffOnce(now, marked, config.ModeMirror)
	require.Equal(t, map[int64]record.Change{1: record.Changed, 3: record.Changed, 4: record.Deleted, 5: record.Changed}, got)
}
