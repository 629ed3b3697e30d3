// Package record holds the units that flow through the pipeline: primary keys,
// records, and the batches each stage publishes.
package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Key is a primary key in an order-preserving binary encoding: comparing two
// encoded keys with bytes.Compare gives the same order as comparing the key
// tuples column by column (integers numerically, everything else as bytes of
// its text form). Sources order their results to match, so the differ can
// merge-join a warehouse stream against a snapshot without decoding keys.
type Key []byte

// Tags of the encoded key parts. A key column has one kind, so tags never mix
// at one position; NULL sorts first.
const (
	tagNull   byte = 0x01
	tagInt    byte = 0x02
	tagString byte = 0x03
)

// Compare orders two keys.
func Compare(a, b Key) int { return bytes.Compare(a, b) }

// AppendNull appends a NULL key part.
func AppendNull(k Key) Key { return append(k, tagNull) }

// AppendInt appends an integer key part: big-endian with the sign bit flipped,
// so byte order is numeric order.
func AppendInt(k Key, v int64) Key {
	k = append(k, tagInt)
	return binary.BigEndian.AppendUint64(k, uint64(v)^(1<<63))
}

// AppendString appends a text key part. 0x00 is escaped as 0x00 0xFF and the
// part ends with 0x00 0x00, so a prefix sorts before its extensions.
func AppendString(k Key, s string) Key {
	k = append(k, tagString)
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			k = append(k, 0, 0xFF)
			continue
		}
		k = append(k, s[i])
	}
	return append(k, 0, 0)
}

// HasNull reports whether any part of the key is NULL.
func (k Key) HasNull() bool {
	parts, err := k.Parts()
	if err != nil {
		return false
	}
	for _, p := range parts {
		if p == nil {
			return true
		}
	}
	return false
}

// Parts decodes the key into its values: nil, int64 or string.
func (k Key) Parts() ([]any, error) {
	var parts []any
	for i := 0; i < len(k); {
		switch k[i] {
		case tagNull:
			parts = append(parts, nil)
			i++
		case tagInt:
			if i+9 > len(k) {
				return nil, fmt.Errorf("decoding key: truncated integer at byte %d", i)
			}
			parts = append(parts, int64(binary.BigEndian.Uint64(k[i+1:i+9])^(1<<63)))
			i += 9
		case tagString:
			var b []byte
			j := i + 1
			for {
				if j+1 >= len(k) {
					return nil, fmt.Errorf("decoding key: unterminated text at byte %d", i)
				}
				if k[j] == 0 && k[j+1] == 0 {
					break
				}
				if k[j] == 0 && k[j+1] == 0xFF {
					b = append(b, 0)
					j += 2
					continue
				}
				b = append(b, k[j])
				j++
			}
			parts = append(parts, string(b))
			i = j + 2
		default:
			return nil, fmt.Errorf("decoding key: unknown tag 0x%02x at byte %d", k[i], i)
		}
	}
	return parts, nil
}

// Object returns the key as a JSON-ready object keyed by the primary key
// column names, the shape destinations receive.
func (k Key) Object(columns []string) (map[string]any, error) {
	parts, err := k.Parts()
	if err != nil {
		return nil, err
	}
	if len(parts) != len(columns) {
		return nil, fmt.Errorf("decoding key: %d parts for %d primary key columns", len(parts), len(columns))
	}
	obj := make(map[string]any, len(parts))
	for i, c := range columns {
		obj[c] = parts[i]
	}
	return obj, nil
}

// String renders the key for people: values joined by commas.
func (k Key) String() string {
	parts, err := k.Parts()
	if err != nil {
		return fmt.Sprintf("%x", []byte(k))
	}
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		if p == nil {
			b.WriteString("NULL")
			continue
		}
		fmt.Fprint(&b, p)
	}
	return b.String()
}
