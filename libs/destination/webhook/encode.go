package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/record"
)

// Encoding the body is the hot path of a webhook sync. encoding/json spends
// most of its time on reflection and on sorting map keys through reflect
// values; records only hold the few canonical types sources produce (see
// source.Source), so those are appended directly, with output identical to
// encoding/json (sorted keys, no HTML escaping) and encoding/json as the
// fallback for anything else.

// encoder holds the buffers of one request; it is pooled.
type encoder struct {
	buf  []byte
	keys []string // stack of sorted map keys, one segment per open map
	// sent maps positions in the request's records array to positions in
	// the batch: records that cannot be encoded are left out.
	sent []int
	tmp  bytes.Buffer // fallback output
	fb   *json.Encoder
}

// maxPooledBuffer keeps one huge batch from pinning its buffer forever.
const maxPooledBuffer = 4 << 20

var encoderPool = sync.Pool{New: func() any {
	e := &encoder{}
	e.fb = json.NewEncoder(&e.tmp)
	e.fb.SetEscapeHTML(false)
	return e
}}

func getEncoder() *encoder { return encoderPool.Get().(*encoder) }

func putEncoder(e *encoder) {
	if cap(e.buf) > maxPooledBuffer {
		return
	}
	clear(e.keys[:cap(e.keys)]) // do not keep record data alive
	e.buf, e.keys, e.sent = e.buf[:0], e.keys[:0], e.sent[:0]
	e.tmp.Reset()
	encoderPool.Put(e)
}

// encodeBatch writes the request body of b into e.buf. A record that cannot
// be encoded (a NaN, an invalid json.Number) is left out of the body and
// gets its own permanent error in errs, which is nil when every record was
// encoded.
func (e *encoder) encodeBatch(b destination.Batch) (errs []error) {
	e.buf = append(e.buf[:0], `{"sync":`...)
	e.buf = appendString(e.buf, b.Sync)
	e.buf = append(e.buf, `,"run_id":`...)
	e.buf = appendString(e.buf, b.RunID)
	e.buf = append(e.buf, `,"batch_id":`...)
	e.buf = appendString(e.buf, b.ID)
	e.buf = append(e.buf, `,"records":[`...)
	e.sent = e.sent[:0]
	for i := range b.Records {
		mark := len(e.buf)
		if len(e.sent) > 0 {
			e.buf = append(e.buf, ',')
		}
		if err := e.appendRecord(&b.Records[i]); err != nil {
			e.buf = e.buf[:mark]
			if errs == nil {
				errs = make([]error, len(b.Records))
			}
			errs[i] = fmt.Errorf("encoding record as JSON: %w", err)
			continue
		}
		e.sent = append(e.sent, i)
	}
	e.buf = append(e.buf, "]}\n"...)
	return errs
}

func (e *encoder) appendRecord(r *record.Record) error {
	switch r.Op {
	case record.OpUpsert, record.OpInsert, record.OpUpdate, record.OpDelete:
	default:
		return fmt.Errorf("unknown op %q", r.Op)
	}
	e.buf = append(e.buf, `{"op":`...)
	e.buf = appendString(e.buf, string(r.Op))
	e.buf = append(e.buf, `,"key":`...)
	if err := e.appendMap(r.Key); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	// Deletes carry no data; every other op sends an object, even empty.
	if r.Op != record.OpDelete {
		e.buf = append(e.buf, `,"data":`...)
		if r.RawData != nil {
			// Data as the transformer encoded it with encoding/json:
			// the same JSON appendMap writes, sorted keys included
			// (encoding/json also escapes <, > and & as \u003c etc.).
			e.buf = append(e.buf, r.RawData...)
		} else if err := e.appendMap(r.Data); err != nil {
			return fmt.Errorf("data: %w", err)
		}
	}
	e.buf = append(e.buf, '}')
	return nil
}

// appendMap writes m with sorted keys; a nil map is written as {}.
func (e *encoder) appendMap(m map[string]any) error {
	start := len(e.keys)
	for k := range m {
		e.keys = append(e.keys, k)
	}
	keys := e.keys[start:]
	slices.Sort(keys)
	e.buf = append(e.buf, '{')
	for i, k := range keys {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendString(e.buf, k)
		e.buf = append(e.buf, ':')
		if err := e.appendValue(m[k]); err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
	}
	e.buf = append(e.buf, '}')
	e.keys = e.keys[:start]
	return nil
}

func (e *encoder) appendValue(v any) error {
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case string:
		e.buf = appendString(e.buf, x)
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case json.Number:
		if x == "" {
			x = "0" // as encoding/json
		}
		if !validNumber(string(x)) {
			return fmt.Errorf("invalid number literal %q", string(x))
		}
		e.buf = append(e.buf, x...)
	case int64:
		e.buf = strconv.AppendInt(e.buf, x, 10)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case float64:
		return e.appendFloat(x)
	case map[string]any:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.appendMap(x)
	case []any:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		e.buf = append(e.buf, '[')
		for i, el := range x {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.appendValue(el); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		e.buf = append(e.buf, ']')
	default:
		// json.RawMessage and anything unusual: encoding/json validates and
		// compacts it.
		e.tmp.Reset()
		if err := e.fb.Encode(v); err != nil {
			return err
		}
		e.buf = append(e.buf, bytes.TrimRight(e.tmp.Bytes(), "\n")...)
	}
	return nil
}

// appendFloat formats like encoding/json: shortest representation, 'e'
// notation only for very small or large magnitudes.
func (e *encoder) appendFloat(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("unsupported value %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.buf = strconv.AppendFloat(e.buf, f, format, -1, 64)
	if format == 'e' {
		// Shorten e-09 to e-9, as encoding/json does.
		n := len(e.buf)
		if n >= 4 && e.buf[n-4] == 'e' && e.buf[n-3] == '-' && e.buf[n-2] == '0' {
			e.buf[n-2] = e.buf[n-1]
			e.buf = e.buf[:n-1]
		}
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string the way encoding/json does with
// HTML escaping off: invalid UTF-8 becomes U+FFFD, and U+2028 and U+2029
// are escaped for JavaScript receivers.
func appendString(b []byte, s string) []byte {
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
