// Package webhook sends record batches as JSON to an HTTP endpoint, the
// documented contract:
//
//	POST <url>
//	Content-Type: application/json
//	Idempotency-Key: <batch id>
//	X-Ebb-Timestamp: <unix seconds>            (with a secret)
//	X-Ebb-Signature: sha256=<hex hmac>         (with a secret, see Sign)
//
//	{"sync":"...","run_id":"...","batch_id":"...",
//	 "records":[{"op":"upsert","key":{...},"data":{...}}, ...]}
//
// A 2xx answer delivers the batch, except the records a body of the form
// {"errors":[{"index":i,"error":"reason"}]} names, which fail with reason.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
)

// Version is sent in the User-Agent header as "ebb/<Version>". Release
// builds set it with -ldflags "-X github.com/ebb-etl/ebb/libs/destination/webhook.Version=v1.2.3".
var Version = "dev"

// Limits on what is read of a response: enough for a per-record error list
// of a full batch, without letting a broken endpoint grow memory.
const (
	maxResponseBody = 1 << 20
	maxSnippet      = 300
)

// reservedHeaders are set by the sender and may not be configured: the
// contract depends on them.
var reservedHeaders = map[string]bool{
	"Content-Type":    true,
	"Content-Length":  true,
	"Host":            true,
	"Idempotency-Key": true,
	HeaderTimestamp:   true,
	HeaderSignature:   true,
}

// Destination is a webhook endpoint. It is safe for concurrent use.
type Destination struct {
	url     string
	method  string
	headers http.Header
	secret  string
	// redact lists the configured values that must never appear in an
	// error, even when the endpoint echoes them in its answer.
	redact  []string
	client  *http.Client
	timeout time.Duration
}

// Open validates cfg (url, headers, secret, method) and prepares an HTTP
// client sized for opts' concurrency.
func Open(cfg map[string]any, opts config.DeliveryOptions) (*Destination, error) {
	d := &Destination{method: http.MethodPost, headers: http.Header{}}

	rawURL, err := stringField(cfg, "url", true)
	if err != nil {
		return nil, err
	}
	// The URL itself may carry a token (many SaaS webhook URLs do), so it
	// is never quoted in errors.
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook config.url: want an absolute http:// or https:// URL")
	}
	d.url = u.String()

	if m, err := stringField(cfg, "method", false); err != nil {
		return nil, err
	} else if m != "" {
		m = strings.ToUpper(m)
		if m != http.MethodPost && m != http.MethodPut && m != http.MethodPatch {
			return nil, fmt.Errorf("webhook config.method: %q is not one of POST, PUT, PATCH", m)
		}
		d.method = m
	}

	if err := d.readHeaders(cfg); err != nil {
		return nil, err
	}

	if v, ok := cfg["secret"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("webhook config.secret: want a string, got %T", v)
		}
		// An empty secret is most likely an unset ${VAR}: refuse rather
		// than silently send unsigned requests.
		if s == "" {
			return nil, errors.New("webhook config.secret: is empty; remove it or give it a value")
		}
		d.secret = s
		d.redact = append(d.redact, s)
	}

	d.timeout = opts.Timeout
	if d.timeout <= 0 {
		d.timeout = config.DefaultTimeout
	}
	// Every partition may have AckWindow batches in flight: keep that many
	// connections alive so steady traffic never pays for new handshakes.
	conc := max(opts.Partitions, 1) * max(opts.AckWindow, 1)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conc
	tr.MaxIdleConnsPerHost = conc
	tr.IdleConnTimeout = 90 * time.Second
	d.client = &http.Client{
		Transport: tr,
		Timeout:   d.timeout,
		// A redirect would resend the body, and configured auth headers,
		// to wherever the endpoint points: treat it as a misconfiguration.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return d, nil
}

func stringField(cfg map[string]any, name string, required bool) (string, error) {
	v, ok := cfg[name]
	if !ok || v == nil {
		if required {
			return "", fmt.Errorf("webhook config.%s is required", name)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("webhook config.%s: want a string, got %T", name, v)
	}
	if required && strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("webhook config.%s is required", name)
	}
	return s, nil
}

func (d *Destination) readHeaders(cfg map[string]any) error {
	v, ok := cfg["headers"]
	if !ok || v == nil {
		return nil
	}
	var hs map[string]any
	switch x := v.(type) {
	case map[string]any:
		hs = x
	case map[string]string:
		hs = make(map[string]any, len(x))
		for k, s := range x {
			hs[k] = s
		}
	default:
		return fmt.Errorf("webhook config.headers: want a map of header names to strings, got %T", v)
	}
	for name, hv := range hs {
		// Header values are never quoted in errors: they often hold tokens.
		s, ok := hv.(string)
		if !ok {
			return fmt.Errorf("webhook config.headers.%s: want a string, got %T", name, hv)
		}
		if !validHeaderName(name) {
			return fmt.Errorf("webhook config.headers: %q is not a valid header name", name)
		}
		if strings.ContainsAny(s, "\r\n\x00") {
			return fmt.Errorf("webhook config.headers.%s: value contains a line break or NUL", name)
		}
		canon := http.CanonicalHeaderKey(name)
		if reservedHeaders[canon] {
			return fmt.Errorf("webhook config.headers.%s: is set by ebb and cannot be configured", name)
		}
		d.headers.Set(canon, s)
		// Very short values ("1", "yes") would mangle errors when
		// redacted and are not secrets worth hiding.
		if len(s) >= 4 {
			d.redact = append(d.redact, s)
		}
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Close releases idle connections.
func (d *Destination) Close() error {
	d.client.CloseIdleConnections()
	return nil
}

// Write sends one batch as one request.
func (d *Destination) Write(ctx context.Context, b destination.Batch) ([]error, error) {
	if len(b.Records) == 0 {
		return nil, nil
	}
	e := getEncoder()
	defer putEncoder(e)
	encErrs := e.encodeBatch(b)
	if len(e.sent) == 0 {
		return encErrs, nil
	}
	// The transport may read and close the body after Do returns (see
	// http.RoundTripper), so the request gets its own copy rather than the
	// pooled buffer.
	body := bytes.Clone(e.j.Buf)

	req, err := http.NewRequestWithContext(ctx, d.method, d.url, bytes.NewReader(body))
	if err != nil {
		return nil, destination.Permanent(errors.New("building webhook request failed"))
	}
	for k, vs := range d.headers {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", b.ID)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "ebb/"+Version)
	}
	if d.secret != "" {
		ts := time.Now().Unix()
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, Sign(d.secret, ts, body))
	}

	resp, err := d.client.Do(req)
	if err != nil {
		return nil, d.transportError(err)
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil && resp.StatusCode/100 == 2 {
		// A cut-off answer may have lost per-record errors: send again
		// (the Idempotency-Key lets the endpoint recognise the batch).
		return nil, fmt.Errorf("reading webhook response (HTTP %d): %w", resp.StatusCode, err)
	}
	errs, err := d.interpret(resp, respBody, e.sent, len(b.Records))
	if err != nil {
		return nil, err
	}
	for i, ee := range encErrs {
		if ee != nil {
			errs[i] = ee
		}
	}
	return errs, nil
}

// transportError describes a failed exchange without the URL, which
// net/http puts in its errors and which may carry a token. It is transient.
func (d *Destination) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("webhook request timed out (timeout %s): %w", d.timeout, ue.Err)
		}
		return fmt.Errorf("webhook request failed: %w", ue.Err)
	}
	return fmt.Errorf("webhook request failed: %w", err)
}

// interpret maps a response to the Destination contract. sent maps the
// request's record positions to the batch's n records.
func (d *Destination) interpret(resp *http.Response, body []byte, sent []int, n int) ([]error, error) {
	code := resp.StatusCode
	switch {
	case code/100 == 2:
		return d.recordErrors(body, sent, n)
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly,
		code == http.StatusTooManyRequests, code/100 == 5:
		err := fmt.Errorf("HTTP %d: %s", code, d.snippet(body))
		if after, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok || code == http.StatusTooManyRequests {
			// A 429 says "slow down" even without a Retry-After.
			return nil, destination.WithRetryAfter(err, after)
		}
		return nil, err
	case code/100 == 3:
		return nil, destination.Permanent(fmt.Errorf("HTTP %d: redirects are not followed; configure the final URL", code))
	default:
		return nil, destination.Permanent(fmt.Errorf("HTTP %d: %s", code, d.snippet(body)))
	}
}

// recordErrors reads the optional per-record error list of a 2xx answer.
// Any other body means the whole batch was delivered.
func (d *Destination) recordErrors(body []byte, sent []int, n int) ([]error, error) {
	errs := make([]error, n)
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || !bytes.Contains(body, []byte(`"errors"`)) {
		return errs, nil
	}
	var answer struct {
		Errors []struct {
			Index *int   `json:"index"`
			Error string `json:"error"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return errs, nil
	}
	for _, e := range answer.Errors {
		// An error that names no record of this batch is a broken
		// endpoint: fail the batch so no failure goes unreported.
		if e.Index == nil || *e.Index < 0 || *e.Index >= len(sent) {
			return nil, destination.Permanent(fmt.Errorf("webhook answered with an error for record index %s of a %d-record batch", indexText(e.Index), len(sent)))
		}
		reason := truncate(d.clean(strings.TrimSpace(e.Error)), maxSnippet)
		if reason == "" {
			reason = "rejected by the webhook"
		}
		errs[sent[*e.Index]] = errors.New(reason)
	}
	return errs, nil
}

func indexText(i *int) string {
	if i == nil {
		return "(missing)"
	}
	return strconv.Itoa(*i)
}

// snippet is the start of a response body, fit for an error message.
// Secrets are removed before cutting, so no prefix of one survives.
func (d *Destination) snippet(body []byte) string {
	s := strings.Join(strings.Fields(d.clean(string(body))), " ")
	if s == "" {
		return "(empty body)"
	}
	return truncate(s, maxSnippet)
}

// clean removes configured secrets and header values from s, in case an
// endpoint or a lower layer echoes them.
func (d *Destination) clean(s string) string {
	s = strings.ToValidUTF8(s, "?")
	for _, v := range d.redact {
		s = strings.ReplaceAll(s, v, "****")
	}
	return s
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP-date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// TakesRawData tells delivery to hand over record data as JSON: the body
// embeds it as it is.
func (d *Destination) TakesRawData() bool { return true }
