package config

import "fmt"

// Safety holds a sync's safety stops: before anything is sent, a run whose
// planned deletes or changes are an unusual share of the last committed
// snapshot waits for approval (`ebb runs approve`) instead of going on. A
// model bug that suddenly returns no rows then cannot archive every contact
// in the CRM.
type Safety struct {
	// MaxDeleteShare is the largest share (0 to 1) of the snapshot's rows a
	// run may delete without approval. Nil means DefaultMaxDeleteShare;
	// 1 turns the check off.
	MaxDeleteShare *float64 `json:"max_delete_share,omitempty" yaml:"max_delete_share"`
	// MaxChangeShare is the same for changed rows. Nil means no limit.
	MaxChangeShare *float64 `json:"max_change_share,omitempty" yaml:"max_change_share"`
	// MinRows is the snapshot size below which no check applies, so small
	// tables are not stopped for a handful of rows. Nil means
	// DefaultSafetyMinRows.
	MinRows *int64 `json:"min_rows,omitempty" yaml:"min_rows"`
}

// Safety defaults: deletes of more than half the rows of a table of 100 rows
// or more wait for approval.
const (
	DefaultMaxDeleteShare = 0.5
	DefaultSafetyMinRows  = 100
)

// Limits returns the delete and change shares and the minimum snapshot
// size, with defaults filled in; a share of 1 or more never stops a run.
func (s Safety) Limits() (maxDelete, maxChange float64, minRows int64) {
	maxDelete, maxChange, minRows = DefaultMaxDeleteShare, 1, DefaultSafetyMinRows
	if s.MaxDeleteShare != nil {
		maxDelete = *s.MaxDeleteShare
	}
	if s.MaxChangeShare != nil {
		maxChange = *s.MaxChangeShare
	}
	if s.MinRows != nil {
		minRows = *s.MinRows
	}
	return maxDelete, maxChange, minRows
}

// Check returns why a run planning deletes and changes against a snapshot
// of snapshotRows rows must wait for approval, or "" when it may go on.
func (s Safety) Check(snapshotRows, deletes, changes int64) string {
	maxDelete, maxChange, minRows := s.Limits()
	if snapshotRows == 0 || snapshotRows < minRows {
		return ""
	}
	share := func(n int64) float64 { return float64(n) / float64(snapshotRows) }
	switch {
	case maxDelete < 1 && share(deletes) > maxDelete:
		return fmt.Sprintf("planned deletes are %d of %d rows (%.1f%%), above safety.max_delete_share %.1f%%",
			deletes, snapshotRows, 100*share(deletes), 100*maxDelete)
	case maxChange < 1 && share(changes) > maxChange:
		return fmt.Sprintf("planned changes are %d of %d rows (%.1f%%), above safety.max_change_share %.1f%%",
			changes, snapshotRows, 100*share(changes), 100*maxChange)
	}
	return ""
}

func (s Safety) validate(r string) error {
	for _, f := range []struct {
		name  string
		value *float64
	}{{"safety.max_delete_share", s.MaxDeleteShare}, {"safety.max_change_share", s.MaxChangeShare}} {
		if f.value != nil && (*f.value < 0 || *f.value > 1) {
			return fieldErr(r, f.name, "must be between 0 and 1 (a share of the snapshot's rows), not %v", *f.value)
		}
	}
	if s.MinRows != nil && *s.MinRows < 0 {
		return fieldErr(r, "safety.min_rows", "must not be negative, not %d", *s.MinRows)
	}
	return nil
}
