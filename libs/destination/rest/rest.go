// Package rest is the HTTP plumbing shared by the SaaS destinations: one
// client per destination, sized for its delivery options, that sends a
// request, reads a bounded answer and classifies what every API means the
// same way (transport failures, 408, 425, 429 and 5xx are transient and
// carry Retry-After; 401 and 403 are permanent auth failures). What a 2xx
// or another 4xx means is left to each destination.
package rest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
)

// Version is sent in the User-Agent header as "ebb/<Version>".
var Version = "dev"

// Limits on what is read of an answer: enough for the per-record results of
// a full batch, without letting a broken API grow memory.
const (
	maxResponseBody = 4 << 20
	maxSnippet      = 300
)

// Client sends one destination's requests.
type Client struct {
	name    string // the destination type, in every error
	http    *http.Client
	timeout time.Duration

	mu     sync.RWMutex
	redact []string
}

// New makes a client for the destination type name. redact lists secrets
// that must never appear in an error, even when the API echoes them.
func New(name string, opts config.DeliveryOptions, redact ...string) *Client {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = config.DefaultTimeout
	}
	// Every partition may have AckWindow batches in flight: keep that many
	// connections alive so steady traffic never pays for new handshakes.
	conc := max(opts.Partitions, 1) * max(opts.AckWindow, 1)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conc
	tr.MaxIdleConnsPerHost = conc
	tr.IdleConnTimeout = 90 * time.Second
	return &Client{
		name:    name,
		timeout: timeout,
		redact:  redact,
		http: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			// A redirect would resend the body and the credentials to
			// wherever the API points: a misconfigured endpoint.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Redact adds values to what errors never show (a token fetched later).
func (c *Client) Redact(values ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.redact = append(c.redact, values...)
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Response is an API's answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Request builds a request with a body of the given content type.
func (c *Client) Request(ctx context.Context, method, u, contentType string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		// The URL may hold a token: not quoted.
		return nil, destination.Permanent(fmt.Errorf("%s: building the request failed", c.name))
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "ebb/"+Version)
	return req, nil
}

// Do sends req. It returns the answer when its status is 2xx or a 4xx the
// destination has to interpret (400, 401, 404, ...); an error for a failed
// exchange or a transient status (408, 425, 429, 5xx), with the API's
// Retry-After; a permanent error for a redirect.
func (c *Client) Do(req *http.Request) (*Response, error) {
	if err := destination.Pace(req.Context()); err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		// A cut-off answer may have lost per-record results: send again.
		return nil, fmt.Errorf("%s: reading the answer (HTTP %d): %w", c.name, resp.StatusCode, err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	switch code := resp.StatusCode; {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly,
		code == http.StatusTooManyRequests, code/100 == 5:
		err := fmt.Errorf("%s: HTTP %d: %s", c.name, code, c.Snippet(body))
		if after, ok := RetryAfter(resp.Header, time.Now()); ok || code == http.StatusTooManyRequests {
			// A 429 says "slow down" even without a Retry-After.
			return nil, destination.WithRetryAfter(err, after)
		}
		return nil, err
	case code/100 == 3:
		return nil, destination.Permanent(fmt.Errorf("%s: HTTP %d: redirects are not followed; configure the API's final address", c.name, code))
	}
	return r, nil
}

// Reject is the permanent error for an answer the destination did not
// expect: 401 and 403 name the destination's auth, so people know to check
// the credentials rather than the records.
func (c *Client) Reject(r *Response) error {
	if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
		return c.AuthRejected(r)
	}
	return destination.Permanent(fmt.Errorf("%s: HTTP %d: %s", c.name, r.Status, c.Snippet(r.Body)))
}

// AuthRejected is the permanent error for an answer the destination knows
// to be about its credentials, whatever its status (some APIs say 400 or
// 404 for a bad key).
func (c *Client) AuthRejected(r *Response) error {
	return destination.Permanent(fmt.Errorf("%s auth rejected (HTTP %d): %s", c.name, r.Status, c.Snippet(r.Body)))
}

// transportError describes a failed exchange without the URL, which
// net/http puts in its errors and which may carry a token. It is transient.
func (c *Client) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("%s: request timed out (timeout %s): %w", c.name, c.timeout, ue.Err)
		}
		return fmt.Errorf("%s: request failed: %w", c.name, ue.Err)
	}
	return fmt.Errorf("%s: request failed: %w", c.name, err)
}

// Snippet is the start of a body, fit for an error message, secrets removed.
func (c *Client) Snippet(body []byte) string {
	s := strings.Join(strings.Fields(c.Clean(string(body))), " ")
	if s == "" {
		return "(empty body)"
	}
	return Truncate(s, maxSnippet)
}

// Clean removes secrets from s, in case an API echoes them.
func (c *Client) Clean(s string) string {
	s = strings.ToValidUTF8(s, "?")
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, v := range c.redact {
		if v != "" {
			s = strings.ReplaceAll(s, v, "****")
		}
	}
	return s
}

// Reason is an API's per-record message fit for a record's error.
func (c *Client) Reason(s string) error {
	s = Truncate(c.Clean(strings.TrimSpace(s)), maxSnippet)
	if s == "" {
		s = "rejected by " + c.name
	}
	return errors.New(s)
}

// Truncate cuts s to at most n bytes on a rune boundary.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// RetryAfter reads how long an API asked to wait: Retry-After (seconds or
// an HTTP date), else X-RateLimit-Reset as Braze sends it (a Unix time) or
// as others do (seconds).
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			return time.Duration(secs * float64(time.Second)), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil || n < 0:
		case n > 1e9: // a Unix time
			return max(time.Unix(n, 0).Sub(now), 0), true
		default:
			return time.Duration(n) * time.Second, true
		}
	}
	return 0, false
}
