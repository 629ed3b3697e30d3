// Package diff is the `local` diff engine: it merge-joins the model's keys and
// row hashes, streamed from the warehouse in key order, against the last
// committed snapshot, and writes the next snapshot and the change set. Memory
// stays constant whatever the table size.
package diff

import (
	"bytes"
	"context"
	"fmt"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
)

// Unchanged marks, in the change set of a sync in mode `all`, a row that did
// not change but is sent again.
const Unchanged record.Change = 'u'

// Stats describes what a diff found.
type Stats struct {
	Rows      int64 // rows with a valid key
	Adds      int64 // planned, after the mode's filter
	Changes   int64
	Deletes   int64
	NullKeys  int64
	FirstNull record.Key
	DupKeys   int64
	FirstDup  record.Key
	// Quarantined counts changes not planned because their key is
	// quarantined.
	Quarantined int64
}

// KeyError reports NULL or duplicate primary keys: the run fails before
// anything is sent.
type KeyError struct{ Stats Stats }

func (e *KeyError) Error() string {
	var parts []string
	if e.Stats.DupKeys > 0 {
		parts = append(parts, fmt.Sprintf("%d duplicate primary keys (first: %s)", e.Stats.DupKeys, e.Stats.FirstDup))
	}
	if e.Stats.NullKeys > 0 {
		parts = append(parts, fmt.Sprintf("%d rows with a NULL in the primary key (first: %s)", e.Stats.NullKeys, e.Stats.FirstNull))
	}
	return "model has " + joinAnd(parts) + "; nothing was sent"
}

func joinAnd(p []string) string {
	if len(p) == 2 {
		return p[0] + " and " + p[1]
	}
	if len(p) == 1 {
		return p[0]
	}
	return "invalid primary keys"
}

// Sends reports whether mode sends a change of kind c.
func Sends(mode config.Mode, c record.Change) bool {
	switch mode {
	case config.ModeUpsert:
		return c == record.Added || c == record.Changed
	case config.ModeUpdate:
		return c == record.Changed
	case config.ModeInsert:
		return c == record.Added
	case config.ModeMirror:
		return c == record.Added || c == record.Changed || c == record.Deleted
	case config.ModeAll:
		return c == record.Added || c == record.Changed || c == Unchanged
	}
	return false
}

// Op is the operation a mode sends for a change.
func Op(mode config.Mode, c record.Change) record.Op {
	switch {
	case c == record.Deleted:
		return record.OpDelete
	case mode == config.ModeUpdate:
		return record.OpUpdate
	case mode == config.ModeInsert:
		return record.OpInsert
	}
	return record.OpUpsert
}

// Options adjust what a diff plans, in both engines.
type Options struct {
	// Skip holds keys (quarantined ones) left out of the change set.
	Skip map[string]bool
	// ResendCommon plans every key in both the model and the snapshot as
	// changed, whatever its hash: a column changed type, and int to text
	// with the same digits hashes the same, yet the destination must get
	// the values in their new type.
	ResendCommon bool
}

// Compute diffs the model against prev, writing every valid row's key and
// hash to next and the changes the mode sends to changes. On a KeyError the
// caller must abort both writers.
func Compute(ctx context.Context, src source.Source, m source.Model, mode config.Mode,
	prev *snapshot.Reader, next, changes *snapshot.Writer) (Stats, error) {
	return ComputeWith(ctx, src, m, mode, Options{}, prev, next, changes)
}

// ComputeWith is Compute with options: keys to leave out, and resending
// every key the snapshot holds.
func ComputeWith(ctx context.Context, src source.Source, m source.Model, mode config.Mode, opts Options,
	prev *snapshot.Reader, next, changes *snapshot.Writer) (Stats, error) {
	var st Stats
	skip := opts.Skip
	havePrev, err := prev.Next()
	if err != nil {
		return st, err
	}
	var last record.Key
	emit := func(key record.Key, c record.Change) error {
		if len(skip) > 0 && skip[string(key)] {
			st.Quarantined++
			return nil
		}
		switch c {
		case record.Added:
			if !Sends(mode, c) {
				return nil
			}
			st.Adds++
		case record.Changed, Unchanged:
			if !Sends(mode, c) {
				return nil
			}
			st.Changes++
		case record.Deleted:
			if !Sends(mode, c) {
				return nil
			}
			st.Deletes++
		}
		return changes.Write(key, []byte{byte(c)})
	}
	// drainPrevBefore emits deletes for snapshot keys before key (all of
	// them when key is nil).
	drainPrevBefore := func(key record.Key) error {
		for havePrev && (key == nil || record.Compare(prev.Key(), key) < 0) {
			if err := emit(prev.Key(), record.Deleted); err != nil {
				return err
			}
			if havePrev, err = prev.Next(); err != nil {
				return err
			}
		}
		return nil
	}
	err = src.ScanHashes(ctx, m, func(key record.Key, hash []byte) error {
		if key.HasNull() {
			if st.NullKeys == 0 {
				st.FirstNull = bytes.Clone(key)
			}
			st.NullKeys++
			return nil
		}
		if last != nil {
			switch c := record.Compare(key, last); {
			case c == 0:
				if st.DupKeys == 0 {
					st.FirstDup = bytes.Clone(key)
				}
				st.DupKeys++
				return nil
			case c < 0:
				return fmt.Errorf("source returned key %s after %s: rows are not in key order", key, last)
			}
		}
		last = append(last[:0], key...)
		if st.NullKeys > 0 || st.DupKeys > 0 {
			return nil // the run fails; just finish counting
		}
		st.Rows++
		if err := drainPrevBefore(key); err != nil {
			return err
		}
		change := record.Added
		if havePrev && record.Compare(prev.Key(), key) == 0 {
			change = Unchanged
			if opts.ResendCommon || !bytes.Equal(prev.Value(), hash) {
				change = record.Changed
			}
			if havePrev, err = prev.Next(); err != nil {
				return err
			}
		}
		if err := next.Write(key, hash); err != nil {
			return err
		}
		return emit(key, change)
	})
	if err != nil {
		return st, err
	}
	if st.NullKeys > 0 || st.DupKeys > 0 {
		return st, &KeyError{Stats: st}
	}
	return st, drainPrevBefore(nil)
}

// Commit writes the snapshot a run commits: the run's candidate (the model
// as diffed), except that every key in keep retains its entry from prev
// (or its absence): those records failed, so the next run sends them again.
func Commit(prev, candidate *snapshot.Reader, keep map[string]bool, out *snapshot.Writer) error {
	return CommitWith(prev, candidate, keep, nil, out)
}

// CommitWith is Commit where, besides, the keys in uncertain get the
// Uncertain hash, present whatever prev and the candidate say: records
// that may or may not have reached the destination.
func CommitWith(prev, candidate *snapshot.Reader, keep, uncertain map[string]bool, out *snapshot.Writer) error {
	hp, err := prev.Next()
	if err != nil {
		return err
	}
	hc, err := candidate.Next()
	if err != nil {
		return err
	}
	write := func(key record.Key, value []byte, present bool) error {
		switch {
		case uncertain[string(key)]:
			return out.Write(key, Uncertain)
		case present:
			return out.Write(key, value)
		}
		return nil
	}
	for hp || hc {
		var c int
		switch {
		case !hp:
			c = 1
		case !hc:
			c = -1
		default:
			c = record.Compare(prev.Key(), candidate.Key())
		}
		switch {
		case c < 0: // only in prev: deleted from the model
			err = write(prev.Key(), prev.Value(), keep[string(prev.Key())])
			if err == nil {
				hp, err = prev.Next()
			}
		case c > 0: // only in candidate: added
			err = write(candidate.Key(), candidate.Value(), !keep[string(candidate.Key())])
			if err == nil {
				hc, err = candidate.Next()
			}
		default:
			src := candidate
			if keep[string(prev.Key())] {
				src = prev
			}
			err = write(src.Key(), src.Value(), true)
			if err == nil {
				hp, err = prev.Next()
			}
			if err == nil {
				hc, err = candidate.Next()
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Uncertain is the row hash of a key whose state at the destination is not
// known: no model row ever hashes to it, so the next run sends the key
// again, as a change while it is in the model and as a delete once it is
// not.
var Uncertain = bytes.Repeat([]byte{0xff}, snapshot.HashSize)

// MarkUncertain writes the snapshot of a run that stopped while delivering:
// prev, with every key of the run's change set marked Uncertain (added when
// prev lacked it), since some of its records may have reached the
// destination and some not. It returns the number of entries written.
func MarkUncertain(prev, changes *snapshot.Reader, out *snapshot.Writer) (int64, error) {
	hp, err := prev.Next()
	if err != nil {
		return 0, err
	}
	hc, err := changes.Next()
	if err != nil {
		return 0, err
	}
	for hp || hc {
		var c int
		switch {
		case !hp:
			c = 1
		case !hc:
			c = -1
		default:
			c = record.Compare(prev.Key(), changes.Key())
		}
		switch {
		case c < 0:
			err = out.Write(prev.Key(), prev.Value())
			if err == nil {
				hp, err = prev.Next()
			}
		default:
			err = out.Write(changes.Key(), Uncertain)
			if err == nil && c == 0 {
				hp, err = prev.Next()
			}
			if err == nil {
				hc, err = changes.Next()
			}
		}
		if err != nil {
			return 0, err
		}
	}
	return out.Count(), nil
}
