package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Encoding records is the hot path of every stage: encoding/json spends
// most of its time on reflection and on sorting map keys through reflect
// values. Records only hold the few canonical types sources produce (see
// source.Source), so those are appended directly, with output identical to
// encoding/json's with HTML escaping off (sorted keys, the same number
// formats) and encoding/json as the fallback for anything else.

// JSONBuffer appends JSON values to Buf. The zero value is ready to use;
// reusing one keeps its buffers.
type JSONBuffer struct {
	Buf  []byte
	keys []string // stack of sorted map keys, one segment per open map
	tmp  bytes.Buffer
	fb   *json.Encoder // fallback, writing into tmp
}

// Reset empties Buf and drops references to record data.
func (j *JSONBuffer) Reset() {
	clear(j.keys[:cap(j.keys)])
	j.Buf, j.keys = j.Buf[:0], j.keys[:0]
	j.tmp.Reset()
}

// String appends s as a JSON string.
func (j *JSONBuffer) String(s string) { j.Buf = AppendJSONString(j.Buf, s) }

// Map appends m with sorted keys; a nil map is written as {}.
func (j *JSONBuffer) Map(m map[string]any) error {
	start := len(j.keys)
	for k := range m {
		j.keys = append(j.keys, k)
	}
	keys := j.keys[start:]
	slices.Sort(keys)
	j.Buf = append(j.Buf, '{')
	for i, k := range keys {
		if i > 0 {
			j.Buf = append(j.Buf, ',')
		}
		j.Buf = AppendJSONString(j.Buf, k)
		j.Buf = append(j.Buf, ':')
		if err := j.Value(m[k]); err != nil {
			clear(keys)
			j.keys = j.keys[:start]
			return fmt.Errorf("field %q: %w", k, err)
		}
	}
	j.Buf = append(j.Buf, '}')
	clear(keys)
	j.keys = j.keys[:start]
	return nil
}

// Value appends v as encoding/json would.
func (j *JSONBuffer) Value(v any) error {
	switch x := v.(type) {
	case nil:
		j.Buf = append(j.Buf, "null"...)
	case string:
		j.Buf = AppendJSONString(j.Buf, x)
	case bool:
		j.Buf = strconv.AppendBool(j.Buf, x)
	case json.Number:
		if x == "" {
			x = "0" // as encoding/json
		}
		if !validNumber(string(x)) {
			return fmt.Errorf("invalid number literal %q", string(x))
		}
		j.Buf = append(j.Buf, x...)
	case int64:
		j.Buf = strconv.AppendInt(j.Buf, x, 10)
	case int:
		j.Buf = strconv.AppendInt(j.Buf, int64(x), 10)
	case int32:
		j.Buf = strconv.AppendInt(j.Buf, int64(x), 10)
	case float64:
		return j.float(x)
	case map[string]any:
		if x == nil {
			j.Buf = append(j.Buf, "null"...)
			return nil
		}
		return j.Map(x)
	case []any:
		if x == nil {
			j.Buf = append(j.Buf, "null"...)
			return nil
		}
		j.Buf = append(j.Buf, '[')
		for i, el := range x {
			if i > 0 {
				j.Buf = append(j.Buf, ',')
			}
			if err := j.Value(el); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		j.Buf = append(j.Buf, ']')
	default:
		// json.RawMessage and anything unusual: encoding/json validates and
		// compacts it.
		if j.fb == nil {
			j.fb = json.NewEncoder(&j.tmp)
			j.fb.SetEscapeHTML(false)
		}
		j.tmp.Reset()
		if err := j.fb.Encode(v); err != nil {
			return err
		}
		j.Buf = append(j.Buf, bytes.TrimRight(j.tmp.Bytes(), "\n")...)
	}
	return nil
}

// float formats like encoding/json: shortest representation, 'e'
// notation only for very small or large magnitudes.
func (j *JSONBuffer) float(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("unsupported value %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	j.Buf = strconv.AppendFloat(j.Buf, f, format, -1, 64)
	if format == 'e' {
		// Shorten e-09 to e-9, as encoding/json does.
		n := len(j.Buf)
		if n >= 4 && j.Buf[n-4] == 'e' && j.Buf[n-3] == '-' && j.Buf[n-2] == '0' {
			j.Buf[n-2] = j.Buf[n-1]
			j.Buf = j.Buf[:n-1]
		}
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string the way encoding/json does
// with HTML escaping off: invalid UTF-8 becomes U+FFFD, and U+2028 and
// U+2029 are escaped for JavaScript receivers.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// validNumber reports whether s is a JSON number literal.
func validNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		for len(s) > 0 && isDigit(s[0]) {
			s = s[1:]
		}
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && isDigit(s[1]) {
		s = s[2:]
		for len(s) > 0 && isDigit(s[0]) {
			s = s[1:]
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		for len(s) > 0 && isDigit(s[0]) {
			s = s[1:]
		}
	}
	return s == ""
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
