package record

import (
	"math"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKeyOrderMatchesTupleOrder(t *testing.T) {
	type tuple struct {
		n int64
		s string
	}
	tuples := []tuple{
		{math.MinInt64, ""}, {-5, "b"}, {-5, "a\x00"}, {-5, "a"}, {0, ""},
		{1, "é"}, {1, "z"}, {1, "za"}, {256, "a"}, {math.MaxInt64, "x"},
	}
	enc := func(tp tuple) Key { return AppendString(AppendInt(nil, tp.n), tp.s) }
	less := func(a, b tuple) bool {
		if a.n != b.n {
			return a.n < b.n
		}
		return a.s < b.s
	}
	sorted := append([]tuple(nil), tuples...)
	sort.Slice(sorted, func(i, j int) bool { return less(sorted[i], sorted[j]) })
	keys := make([]Key, len(tuples))
	for i, tp := range tuples {
		keys[i] = enc(tp)
	}
	sort.Slice(keys, func(i, j int) bool { return Compare(keys[i], keys[j]) < 0 })
	for i, k := range keys {
		parts, err := k.Parts()
		require.NoError(t, err)
		require.Equal(t, []any{sorted[i].n, sorted[i].s}, parts)
	}
}

func TestKeyNullAndObject(t *testing.T) {
	k := AppendNull(AppendInt(nil, 7))
	require.True(t, k.HasNull())
	obj, err := k.Object([]string{"a", "b"})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"a": int64(7), "b": nil}, obj)
	require.Equal(t, "7,NULL", k.String())
	require.False(t, AppendString(nil, "x").HasNull())
}
