package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSafetyCheck(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	n := func(v int64) *int64 { return &v }
	var none Safety
	require.Empty(t, none.Check(1000, 500, 1000), "half the rows is allowed by default")
	require.Contains(t, none.Check(1000, 501, 0), "planned deletes are 501 of 1000 rows (50.1%), above safety.max_delete_share 50.0%")
	require.Contains(t, none.Check(1000, 1000, 0), "1000 of 1000")
	require.Empty(t, none.Check(99, 99, 0), "small tables are not stopped")
	require.Empty(t, none.Check(0, 0, 0), "a first run has no snapshot")

	strict := Safety{MaxDeleteShare: f(0.1), MaxChangeShare: f(0.2), MinRows: n(0)}
	require.Contains(t, strict.Check(10, 2, 0), "max_delete_share 10.0%")
	require.Contains(t, strict.Check(10, 0, 3), "planned changes are 3 of 10 rows")
	require.Empty(t, strict.Check(10, 1, 2))
	off := Safety{MaxDeleteShare: f(1)}
	require.Empty(t, off.Check(1000, 1000, 0))
}

func TestSafetyValidation(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	s := Sync{Name: "s", Source: "a", Destination: "b", Mode: ModeMirror,
		Model: Model{SQL: "SELECT 1 AS id", PrimaryKey: []string{"id"}}}
	require.NoError(t, s.Validate())
	s.Safety.MaxDeleteShare = f(20)
	require.ErrorContains(t, s.Validate(), `safety.max_delete_share: must be between 0 and 1`)
}
