package query

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
)

func TestAfter(t *testing.T) {
	param := func(n, i int) string { return fmt.Sprintf("$%d", n) }
	exprs := []string{"a", "b", "c"}

	cond, args := After(exprs, []any{int64(1), "x", "y"}, param, true)
	require.Equal(t, "(a, b, c) > ($1, $2, $3)", cond)
	require.Equal(t, []any{int64(1), "x", "y"}, args)

	cond, args = After(exprs, []any{int64(1), "x", "y"}, param, false)
	require.Equal(t, "(a > $3 OR (a = $3 AND (b > $2 OR (b = $2 AND c > $1))))", cond)
	require.Equal(t, []any{"y", "x", int64(1)}, args)

	cond, args = After(exprs, []any{int64(1), nil, "y"}, param, true)
	require.Equal(t, "(a > $2 OR (a = $2 AND (b IS NOT NULL OR (b IS NULL AND c > $1))))", cond)
	require.Equal(t, []any{"y", int64(1)}, args)

	cond, _ = After(exprs[:1], []any{nil}, param, true)
	require.Equal(t, "a IS NOT NULL", cond)
}

func TestKeysAndParts(t *testing.T) {
	isInt := func(i int) bool { return i == 0 }
	keys, err := Keys([]string{"id", "name", "x"}, []string{"id", "name"}, isInt)
	require.NoError(t, err)
	require.Equal(t, []Key{{"id", true}, {"name", false}}, keys)

	_, err = Keys([]string{"id", "name"}, []string{"user_id"}, isInt)
	require.EqualError(t, err, `primary key column "user_id" is not in the model's columns (available: id, name)`)

	parts, err := Parts(record.AppendString(record.AppendInt(nil, 7), "a"), keys)
	require.NoError(t, err)
	require.Equal(t, []any{int64(7), "a"}, parts)
	_, err = Parts(record.AppendString(record.AppendString(nil, "7"), "a"), keys)
	require.ErrorContains(t, err, `part 1 is text but column "id" is an integer`)
}

func TestTrim(t *testing.T) {
	require.Equal(t, "SELECT 1", Trim("  SELECT 1 ;\n ; "))
	require.Equal(t, "(\nSELECT 1 -- c\n) AS m", Wrap("SELECT 1 -- c\n;"))
}
