package record

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var tricky = []string{
	"", "plain", `quote " backslash \ slash /`, "<html>&amp;</html>", "ünïcødé 日本語 🎉",
	"\x00\x01\x07\b\f\n\r\t\x1f\x7f", "line\u2028sep\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate",
}

func TestValidNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-1", "10", "1.5", "0.5", "1e5", "1E+5", "1e-05", "-12.34e+56"} {
		assert.True(t, validNumber(s), s)
		assert.True(t, json.Valid([]byte(s)), s)
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1.2.3", "0x10", "NaN", "1 ", " 1", "--1", "1e5.5"} {
		assert.False(t, validNumber(s), s)
		assert.False(t, json.Valid([]byte(s)) && s != "" && s[0] != ' ' && s[len(s)-1] != ' ', s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(s))
		require.Equal(t, strings.TrimSuffix(buf.String(), "\n"), string(AppendJSONString(nil, s)))
	})
}
