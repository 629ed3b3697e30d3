// Package canon renders warehouse values in the canonical forms every source
// returns (see package source), so the same data reads the same from any
// warehouse.
package canon

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"time"
)

// Layouts of the canonical temporal forms.
const (
	TimestampTZLayout = time.RFC3339Nano
	TimestampLayout   = "2006-01-02T15:04:05.999999"
	DateLayout        = "2006-01-02"
	TimeLayout        = "15:04:05.999999"
)

// TimestampTZ renders an instant in UTC.
func TimestampTZ(t time.Time) string { return t.UTC().Format(TimestampTZLayout) }

// Timestamp renders a wall-clock timestamp without zone.
func Timestamp(t time.Time) string { return t.Format(TimestampLayout) }

// Date renders a calendar date.
func Date(t time.Time) string { return t.Format(DateLayout) }

// Float returns f, or its name as a string for NaN and the infinities, which
// JSON cannot carry as numbers.
func Float(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// Bytes renders binary data as standard base64.
func Bytes(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// UUID renders 16 bytes in the canonical 8-4-4-4-12 lower-case form.
func UUID(b []byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:16])
	return string(s[:])
}

// Decimal renders unscaled × 10^-scale exactly, with scale fraction digits
// (the way Postgres prints numeric(p, s)).
func Decimal(unscaled *big.Int, scale int) json.Number {
	digits := new(big.Int).Abs(unscaled).String()
	sign := ""
	if unscaled.Sign() < 0 {
		sign = "-"
	}
	if scale <= 0 {
		return json.Number(sign + digits + strings.Repeat("0", -scale))
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	point := len(digits) - scale
	return json.Number(sign + digits[:point] + "." + digits[point:])
}
