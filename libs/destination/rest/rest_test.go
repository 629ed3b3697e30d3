package rest

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		header http.Header
		want   time.Duration
		ok     bool
	}{
		{http.Header{"Retry-After": {"7"}}, 7 * time.Second, true},
		{http.Header{"Retry-After": {"1.5"}}, 1500 * time.Millisecond, true},
		{http.Header{"Retry-After": {now.Add(time.Minute).Format(http.TimeFormat)}}, time.Minute, true},
		// Braze: the end of the window as a Unix time.
		{http.Header{"X-Ratelimit-Reset": {fmt.Sprint(now.Add(5 * time.Second).Unix())}}, 5 * time.Second, true},
		{http.Header{"X-Ratelimit-Reset": {"2"}}, 2 * time.Second, true},
		{http.Header{"Retry-After": {"soon"}}, 0, false},
		{http.Header{}, 0, false},
	}
	for _, c := range cases {
		got, ok := RetryAfter(c.header, now)
		assert.Equal(t, c.ok, ok, c.header)
		assert.Equal(t, c.want, got, c.header)
	}
}

func TestCleanAndTruncate(t *testing.T) {
	c := &Client{name: "x", redact: []string{"sekrit"}}
	assert.Equal(t, "key **** bad", c.Snippet([]byte("key  sekrit\nbad")))
	assert.Equal(t, "(empty body)", c.Snippet(nil))
	assert.Equal(t, "ab…", Truncate("abc", 2))
	assert.Equal(t, "é…", Truncate("éé", 3))
}
