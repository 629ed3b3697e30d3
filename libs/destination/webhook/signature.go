package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signature headers. The signed payload is timestamp + "." + body, so a
// receiver that checks the timestamp's age also rejects replays.
const (
	HeaderTimestamp = "X-Ebb-Timestamp"
	HeaderSignature = "X-Ebb-Signature"
)

const signaturePrefix = "sha256="

// Errors Verify returns, so receivers can answer 401 with a reason.
var (
	ErrSignature = errors.New("webhook signature does not match")
	ErrTimestamp = errors.New("webhook timestamp is missing, malformed or too old")
)

// Sign returns the X-Ebb-Signature value of body sent at ts (unix seconds):
// "sha256=" followed by the hex HMAC-SHA256 of ts + "." + body.
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	var buf [20]byte
	mac.Write(strconv.AppendInt(buf[:0], ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a request's X-Ebb-Signature (header) and X-Ebb-Timestamp
// (ts) against its raw body. header may list several comma-separated
// signatures, so a receiver can accept both sides of a secret rotation by
// calling Verify once per secret. maxAge > 0 rejects timestamps further than
// maxAge from now in either direction; 0 disables the check.
func Verify(secret, header, ts string, body []byte, maxAge time.Duration) error {
	sent, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if maxAge > 0 {
		age := time.Since(time.Unix(sent, 0))
		if age > maxAge || age < -maxAge {
			return fmt.Errorf("%w: sent %s ago, limit %s", ErrTimestamp, age.Truncate(time.Second), maxAge)
		}
	}
	want := Sign(secret, sent, body)
	for _, got := range strings.Split(header, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(got)), []byte(want)) {
			return nil
		}
	}
	return ErrSignature
}
