package snapshot

import (
	"fmt"
	"slices"

	"github.com/ebb-etl/ebb/libs/source"
)

// TypeChange is a model column whose type is not the one the committed
// snapshot recorded.
type TypeChange struct {
	Column   string
	From, To string
	// Key is set for a primary key column whose keys are encoded
	// otherwise now: an integer type became another type, or the reverse.
	// Every row then has another key than the one the snapshot holds, so
	// a diff would delete each row and add it again; a column of the key
	// whose encoding stays is reported like any other column.
	Key bool
}

func (c TypeChange) String() string {
	return fmt.Sprintf("column %q changed type from %s to %s", c.Column, c.From, c.To)
}

// TypeChanges compares the model's columns with those the committed
// snapshot recorded (nil: the snapshot predates recorded types, or there
// is none, and nothing is compared) and returns, in the model's order,
// each column present in both whose type differs.
//
// Types are compared by the names the source gives them, except that the
// integer types (source.Column.Int) are one type whatever their width: their
// keys and values are the same int64s, so int4 becoming int8 changes
// nothing a destination sees. A primary key column is a Key change when it
// crosses between integers and the rest, which is what changes how its
// keys are encoded.
func TypeChanges(committed, current []source.Column, primaryKey []string) []TypeChange {
	var out []TypeChange
	for _, c := range current {
		i := slices.IndexFunc(committed, func(p source.Column) bool { return p.Name == c.Name })
		if i < 0 {
			continue // a new column: its rows hash differently anyway
		}
		prev := committed[i]
		if prev.Int == c.Int && (c.Int || prev.Type == c.Type) {
			continue
		}
		out = append(out, TypeChange{
			Column: c.Name,
			From:   prev.Type,
			To:     c.Type,
			Key:    prev.Int != c.Int && slices.Contains(primaryKey, c.Name),
		})
	}
	return out
}
