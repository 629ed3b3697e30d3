package record

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// parser reads the JSON of stage messages without reflection, producing
// what encoding/json with UseNumber produces (map[string]any, []any,
// string, json.Number, bool, nil) and refusing what it refuses. Decoding
// was the largest cost of every stage.
type parser struct {
	data []byte
	i    int
	// names interns object keys: a batch repeats the same few field names
	// on every record, and a hit costs no allocation.
	names map[string]string
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// maxInterned bounds the names a parser keeps: column names repeat,
// keys of free-form objects may not.
const maxInterned = 1024

func newParser(data []byte) *parser { return &parser{data: data} }

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *parser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next skips space and returns the next byte without consuming it, 0 at
// the end.
func (p *parser) next() byte {
	p.space()
	if p.i >= len(p.data) {
		return 0
	}
	return p.data[p.i]
}

func (p *parser) expect(c byte) error {
	if p.next() != c {
		return p.unexpected(fmt.Sprintf("%q", c))
	}
	p.i++
	return nil
}

func (p *parser) unexpected(want string) error {
	if p.i >= len(p.data) {
		return p.errorf("unexpected end, want %s", want)
	}
	return p.errorf("unexpected %q, want %s", p.data[p.i], want)
}

// end checks that only space follows the value.
func (p *parser) end() error {
	if p.space(); p.i < len(p.data) {
		return p.errorf("unexpected %q after the value", p.data[p.i])
	}
	return nil
}

// value reads any JSON value.
func (p *parser) value(depth int) (any, error) {
	switch c := p.next(); {
	case c == '{':
		m, err := p.object(depth + 1)
		if err != nil {
			return nil, err
		}
		return m, nil
	case c == '[':
		a, err := p.array(depth + 1)
		if err != nil {
			return nil, err
		}
		return a, nil
	case c == '"':
		return p.string()
	case c == '-' || isDigit(c):
		n, err := p.number()
		return json.Number(n), err
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.unexpected("a value")
}

func (p *parser) literal(word string) error {
	if len(p.data)-p.i < len(word) || string(p.data[p.i:p.i+len(word)]) != word {
		return p.errorf("want %s", word)
	}
	p.i += len(word)
	return nil
}

// object reads an object into a map; a repeated key keeps its last value,
// as encoding/json does.
func (p *parser) object(depth int) (map[string]any, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deeply")
	}
	m := make(map[string]any)
	err := p.fields(func(name []byte) error {
		v, err := p.value(depth)
		if err != nil {
			return err
		}
		m[p.intern(name)] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// fields reads an object, calling read for each field with its name; read
// must consume the field's value.
func (p *parser) fields(read func(name []byte) error) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	if p.next() == '}' {
		p.i++
		return nil
	}
	for {
		if p.next() != '"' {
			return p.unexpected("a field name")
		}
		name, err := p.stringBytes()
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		if err := read(name); err != nil {
			return err
		}
		switch p.next() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.unexpected(`"," or "}"`)
		}
	}
}

// elements reads an array, calling read for each element, which must
// consume it.
func (p *parser) elements(read func() error) error {
	if err := p.expect('['); err != nil {
		return err
	}
	if p.next() == ']' {
		p.i++
		return nil
	}
	for {
		if err := read(); err != nil {
			return err
		}
		switch p.next() {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.unexpected(`"," or "]"`)
		}
	}
}

func (p *parser) array(depth int) ([]any, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deeply")
	}
	a := []any{}
	err := p.elements(func() error {
		v, err := p.value(depth)
		a = append(a, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (p *parser) intern(name []byte) string {
	if s, ok := p.names[string(name)]; ok {
		return s
	}
	s := string(name)
	if p.names == nil {
		p.names = map[string]string{}
	}
	if len(p.names) < maxInterned {
		p.names[s] = s
	}
	return s
}

func (p *parser) string() (string, error) {
	b, err := p.stringBytes()
	return string(b), err
}

// stringBytes reads a string; the result aliases the input when the
// string has no escapes and is ASCII, which is the common case.
func (p *parser) stringBytes() ([]byte, error) {
	start := p.i + 1 // after the quote
	for i := start; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			p.i = i + 1
			return p.data[start:i], nil
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return p.unquote(start)
		}
	}
	p.i = len(p.data)
	return nil, p.errorf("unterminated string")
}

// unquote reads a string with escapes or non-ASCII text the way
// encoding/json does: invalid UTF-8 and unpaired surrogates become U+FFFD.
func (p *parser) unquote(start int) ([]byte, error) {
	var b []byte
	i := start
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == '"':
			p.i = i + 1
			return b, nil
		case c == '\\':
			if i+1 >= len(p.data) {
				p.i = i
				return nil, p.errorf("unterminated string")
			}
			switch e := p.data[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(p.data[i+2:])
				if !ok {
					p.i = i
					return nil, p.errorf(`invalid \u escape`)
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2, ok := nextSurrogate(p.data[i:]); ok {
						if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
							b = utf8.AppendRune(b, dec)
							i += 6
							continue
						}
					}
					r = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				p.i = i
				return nil, p.errorf("invalid escape %q", e)
			}
			i += 2
		case c < 0x20:
			p.i = i
			return nil, p.errorf("control character %q in a string", c)
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(p.data[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, unicode.ReplacementChar)
			} else {
				b = append(b, p.data[i:i+size]...)
			}
			i += size
		}
	}
	p.i = len(p.data)
	return nil, p.errorf("unterminated string")
}

// nextSurrogate reads a \uXXXX escape at the start of s.
func nextSurrogate(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	return hex4(s[2:])
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}

// number reads a number literal.
func (p *parser) number() (string, error) {
	start := p.i
	i := p.i
	if i < len(p.data) && p.data[i] == '-' {
		i++
	}
	switch {
	case i < len(p.data) && p.data[i] == '0':
		i++
	case i < len(p.data) && '1' <= p.data[i] && p.data[i] <= '9':
		for i < len(p.data) && isDigit(p.data[i]) {
			i++
		}
	default:
		p.i = i
		return "", p.errorf("invalid number")
	}
	if i < len(p.data) && p.data[i] == '.' {
		i++
		if i >= len(p.data) || !isDigit(p.data[i]) {
			p.i = i
			return "", p.errorf("invalid number")
		}
		for i < len(p.data) && isDigit(p.data[i]) {
			i++
		}
	}
	if i < len(p.data) && (p.data[i] == 'e' || p.data[i] == 'E') {
		i++
		if i < len(p.data) && (p.data[i] == '+' || p.data[i] == '-') {
			i++
		}
		if i >= len(p.data) || !isDigit(p.data[i]) {
			p.i = i
			return "", p.errorf("invalid number")
		}
		for i < len(p.data) && isDigit(p.data[i]) {
			i++
		}
	}
	p.i = i
	return string(p.data[start:i]), nil
}

// skip checks and passes over one value, returning its bytes. Like
// encoding/json's RawMessage, strings are checked for their escapes, not
// for valid UTF-8.
func (p *parser) skip(depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, p.errorf("nested too deeply")
	}
	c := p.next()
	start := p.i
	var err error
	switch {
	case c == '{':
		err = p.fields(func([]byte) error { _, err := p.skip(depth + 1); return err })
	case c == '[':
		err = p.elements(func() error { _, err := p.skip(depth + 1); return err })
	case c == '"':
		err = p.skipString()
	case c == '-' || isDigit(c):
		_, err = p.number()
	case c == 't':
		err = p.literal("true")
	case c == 'f':
		err = p.literal("false")
	case c == 'n':
		err = p.literal("null")
	default:
		err = p.unexpected("a value")
	}
	if err != nil {
		return nil, err
	}
	return p.data[start:p.i], nil
}

func (p *parser) skipString() error {
	for i := p.i + 1; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			p.i = i + 1
			return nil
		case c == '\\':
			if i+1 >= len(p.data) {
				break
			}
			switch p.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, ok := hex4(p.data[i+2:]); !ok {
					p.i = i
					return p.errorf(`invalid \u escape`)
				}
				i += 5
			default:
				p.i = i
				return p.errorf("invalid escape %q", p.data[i+1])
			}
		case c < 0x20:
			p.i = i
			return p.errorf("control character %q in a string", c)
		}
	}
	p.i = len(p.data)
	return p.errorf("unterminated string")
}

// Typed readers for the fields of stage messages. null reads as the zero
// value, as encoding/json leaves a field untouched by null.

func (p *parser) null() bool {
	if p.next() == 'n' && p.literal("null") == nil {
		return true
	}
	return false
}

func (p *parser) stringField() (string, error) {
	if p.null() {
		return "", nil
	}
	if p.next() != '"' {
		return "", p.unexpected("a string")
	}
	return p.string()
}

func (p *parser) intField() (int, error) {
	if p.null() {
		return 0, nil
	}
	if c := p.next(); c != '-' && !isDigit(c) {
		return 0, p.unexpected("a number")
	}
	n, err := p.number()
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(n)
	if err != nil {
		return 0, p.errorf("want an integer, got %s", n)
	}
	return v, nil
}

func (p *parser) boolField() (bool, error) {
	switch p.next() {
	case 't':
		return true, p.literal("true")
	case 'f':
		return false, p.literal("false")
	case 'n':
		return false, p.literal("null")
	}
	return false, p.unexpected("true or false")
}

// mapField reads an object or null.
func (p *parser) mapField() (map[string]any, error) {
	if p.null() {
		return nil, nil
	}
	if p.next() != '{' {
		return nil, p.unexpected("an object")
	}
	return p.object(1)
}

// parseJSON decodes one JSON value as encoding/json with UseNumber would
// into an any (the fuzz test's view of the parser).
func parseJSON(data []byte) (any, error) {
	p := newParser(data)
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	return v, p.end()
}

// ParseJSONObject decodes a JSON object (or null, giving nil).
func ParseJSONObject(data []byte) (map[string]any, error) {
	p := newParser(data)
	m, err := p.mapField()
	if err != nil {
		return nil, err
	}
	return m, p.end()
}
