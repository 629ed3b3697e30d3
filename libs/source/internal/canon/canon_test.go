package canon

import (
	"encoding/json"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecimal(t *testing.T) {
	for _, tc := range []struct {
		unscaled string
		scale    int
		want     json.Number
	}{
		{"0", 0, "0"},
		{"0", 3, "0.000"},
		{"1500000", 6, "1.500000"},
		{"-5", 2, "-0.05"},
		{"-1", 6, "-0.000001"},
		{"123", 3, "0.123"},
		{"1234", 3, "1.234"},
		{"12", -2, "1200"},
		{"-170141183460469231731687303715884105727", 10, "-17014118346046923173168730371.5884105727"},
	} {
		n, ok := new(big.Int).SetString(tc.unscaled, 10)
		require.True(t, ok)
		require.Equal(t, tc.want, Decimal(n, tc.scale), "%s scale %d", tc.unscaled, tc.scale)
	}
}

func TestUUID(t *testing.T) {
	b := []byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}
	require.Equal(t, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", UUID(b))
}
