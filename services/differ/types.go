package differ

import (
	"context"
	"fmt"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
)

// fieldTypeChanges logs the columns whose type changed.
const fieldTypeChanges = "type_changes"

// modelTypes are the model's columns as a run diffs them, and the changes
// of type since the committed snapshot that the run reports.
type modelTypes struct {
	columns []source.Column
	changes []string
}

// checkTypes reads the model's columns and compares their types with those
// of the committed snapshot, before anything is planned. A primary key
// column whose keys would be encoded otherwise fails the run: every row
// would be planned as a delete of its old key and an add of its new one,
// which can reach the destination in either order and lose the row. Any
// other change of type is returned, for the run to report and to send
// every row again: the row hashes may not change (int to text with the
// same digits), yet the destination holds values of the old type. A
// snapshot without rows has no key to lose: its key changes are only
// reported.
func checkTypes(ctx context.Context, src source.Source, sync config.Sync, ptr snapshot.Pointer) (modelTypes, error) {
	cols, err := src.Columns(ctx, sync.Model.SQL)
	if err != nil {
		return modelTypes{}, fmt.Errorf("reading the model's columns: %w", err)
	}
	out := modelTypes{columns: cols}
	for _, c := range snapshot.TypeChanges(ptr.Columns, cols, sync.Model.PrimaryKey) {
		if c.Key && ptr.Rows > 0 {
			return out, keyTypeError(sync.Name, c)
		}
		out.changes = append(out.changes, c.String()+": "+resendNote(sync.Mode))
	}
	return out, nil
}

// keyTypeError names the key column, its types and the two ways out.
func keyTypeError(sync string, c snapshot.TypeChange) error {
	return fmt.Errorf("primary key column %q changed type from %s to %s since the last committed snapshot; nothing was sent. "+
		"Cast it back in the model (CAST(%s AS %s)), or start over with ebb sync reset %s (the next run then sends every row as an add)",
		c.Column, c.From, c.To, c.Column, c.From, sync)
}

// resendNote says what a run does about a type change in mode.
func resendNote(mode config.Mode) string {
	if !diff.Sends(mode, record.Changed) {
		return fmt.Sprintf("mode %s sends no changes, so rows already sent keep values of the old type", mode)
	}
	return "every row is sent again"
}

// committedColumns are the types a commit records with the snapshot: the
// run's, unless the run resent rows for a type change and some of them
// failed. A failed record keeps its old hash, which a change of type with
// the same text does not alter, so only the old types make the next run
// send it again (with every other row: duplicates, never a loss).
func committedColumns(r *run.Run, prev snapshot.Pointer) []source.Column {
	if len(r.TypeChanges) > 0 && r.FailedRecords() > 0 {
		return prev.Columns
	}
	return r.Columns
}
