package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/webhook"
	"github.com/ebb-etl/ebb/libs/record"
)

var opts = config.DeliveryOptions{
	BatchSize: 100, Partitions: 2, AckWindow: 2, Timeout: 5 * time.Second, RetryFor: time.Minute,
}

// request is what a test server saw.
type request struct {
	method string
	header http.Header
	body   []byte
}

// server answers with respond and records requests.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
}

func newServer(t *testing.T, respond http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, request{method: r.Method, header: r.Header.Clone(), body: body})
		s.mu.Unlock()
		if respond != nil {
			respond(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) last(t *testing.T) request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(t, s.reqs, "no request received")
	return s.reqs[len(s.reqs)-1]
}

func open(t *testing.T, cfg map[string]any, o config.DeliveryOptions) *webhook.Destination {
	t.Helper()
	d, err := webhook.Open(cfg, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func sampleBatch() destination.Batch {
	return destination.Batch{
		ID:    "users/run-1/deliver/3/0",
		Sync:  "users",
		RunID: "run-1",
		Records: []record.Record{
			{
				Op:     record.OpUpsert,
				KeyEnc: record.AppendInt(nil, 1),
				Key:    map[string]any{"id": json.Number("1")},
				Data: map[string]any{
					"email":   "zoë@example.com",
					"html":    "<b>&</b>",
					"mrr":     json.Number("12345678901234.123456"),
					"active":  true,
					"none":    nil,
					"tags":    []any{"a", "b"},
					"profile": json.RawMessage(`{"plan":"pro"}`),
				},
			},
			{Op: record.OpInsert, KeyEnc: record.AppendInt(nil, 2), Key: map[string]any{"id": json.Number("2")}},
			{Op: record.OpUpdate, KeyEnc: record.AppendInt(nil, 3), Key: map[string]any{"id": json.Number("3")}, Data: map[string]any{"email": "c@example.com"}},
			{Op: record.OpDelete, KeyEnc: record.AppendInt(nil, 4), Key: map[string]any{"id": json.Number("4")}},
		},
	}
}

func TestEnvelopeAndHeaders(t *testing.T) {
	srv := newServer(t, nil)
	d := open(t, map[string]any{
		"url":     srv.URL + "/hooks/ebb",
		"method":  "put",
		"headers": map[string]any{"X-Api-Key": "key-123", "x-tenant": "acme"},
	}, opts)

	errs, err := d.Write(context.Background(), sampleBatch())
	require.NoError(t, err)
	require.Len(t, errs, 4)
	for _, e := range errs {
		require.NoError(t, e)
	}

	req := srv.last(t)
	assert.Equal(t, http.MethodPut, req.method)
	assert.Equal(t, "application/json", req.header.Get("Content-Type"))
	assert.Equal(t, "users/run-1/deliver/3/0", req.header.Get("Idempotency-Key"))
	assert.Equal(t, "ebb/"+webhook.Version, req.header.Get("User-Agent"))
	assert.Equal(t, "key-123", req.header.Get("X-Api-Key"))
	assert.Equal(t, "acme", req.header.Get("X-Tenant"))
	assert.Empty(t, req.header.Get(webhook.HeaderSignature), "no secret, no signature")
	assert.Empty(t, req.header.Get(webhook.HeaderTimestamp))

	assert.JSONEq(t, `{
		"sync": "users", "run_id": "run-1", "batch_id": "users/run-1/deliver/3/0",
		"records": [
			{"op": "upsert", "key": {"id": 1}, "data": {
				"email": "zoë@example.com", "html": "<b>&</b>", "mrr": 12345678901234.123456,
				"active": true, "none": null, "tags": ["a", "b"], "profile": {"plan": "pro"}}},
			{"op": "insert", "key": {"id": 2}, "data": {}},
			{"op": "update", "key": {"id": 3}, "data": {"email": "c@example.com"}},
			{"op": "delete", "key": {"id": 4}}
		]}`, string(req.body))
	// Exact decimals travel as written, and HTML is not escaped.
	assert.Contains(t, string(req.body), `"mrr":12345678901234.123456`)
	assert.Contains(t, string(req.body), `"html":"<b>&</b>"`)
	assert.NotContains(t, string(req.body), `"k"`, "the internal key encoding is not sent")
}

func TestEmptyBatchSendsNothing(t *testing.T) {
	srv := newServer(t, nil)
	d := open(t, map[string]any{"url": srv.URL}, opts)
	errs, err := d.Write(context.Background(), destination.Batch{ID: "x"})
	require.NoError(t, err)
	require.Empty(t, errs)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Empty(t, srv.reqs)
}

func TestSignature(t *testing.T) {
	const secret = "whsec_0123456789"
	srv := newServer(t, nil)
	d := open(t, map[string]any{"url": srv.URL, "secret": secret}, opts)
	_, err := d.Write(context.Background(), sampleBatch())
	require.NoError(t, err)

	req := srv.last(t)
	ts := req.header.Get(webhook.HeaderTimestamp)
	sig := req.header.Get(webhook.HeaderSignature)
	sent, err := strconv.ParseInt(ts, 10, 64)
	require.NoError(t, err)
	assert.InDelta(t, time.Now().Unix(), sent, 60)
	assert.True(t, strings.HasPrefix(sig, "sha256="), sig)
	assert.Len(t, sig, len("sha256=")+64)

	require.NoError(t, webhook.Verify(secret, sig, ts, req.body, time.Minute))
	require.ErrorIs(t, webhook.Verify("other-secret", sig, ts, req.body, time.Minute), webhook.ErrSignature)
	tampered := append([]byte(nil), req.body...)
	tampered[len(tampered)-3] ^= 1
	require.ErrorIs(t, webhook.Verify(secret, sig, ts, tampered, time.Minute), webhook.ErrSignature)
	require.ErrorIs(t, webhook.Verify(secret, sig, strconv.FormatInt(sent+1, 10), req.body, time.Minute), webhook.ErrSignature)
}

func TestSignVerify(t *testing.T) {
	body := []byte(`{"a":1}`)
	// The documented construction, computed independently.
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte(`1700000000.{"a":1}`))
	assert.Equal(t, "sha256="+hex.EncodeToString(mac.Sum(nil)), webhook.Sign("secret", 1700000000, body))

	now := time.Now().Unix()
	sig := webhook.Sign("secret", now, body)
	ts := strconv.FormatInt(now, 10)
	require.NoError(t, webhook.Verify("secret", sig, ts, body, time.Minute))
	require.NoError(t, webhook.Verify("secret", "sha256=00, "+sig, ts, body, time.Minute), "any listed signature may match")
	require.NoError(t, webhook.Verify("secret", webhook.Sign("secret", 1, body), "1", body, 0), "maxAge 0 skips the age check")

	old := now - 3600
	require.ErrorIs(t, webhook.Verify("secret", webhook.Sign("secret", old, body), strconv.FormatInt(old, 10), body, time.Minute), webhook.ErrTimestamp)
	future := now + 3600
	require.ErrorIs(t, webhook.Verify("secret", webhook.Sign("secret", future, body), strconv.FormatInt(future, 10), body, time.Minute), webhook.ErrTimestamp)
	require.ErrorIs(t, webhook.Verify("secret", sig, "", body, time.Minute), webhook.ErrTimestamp)
	require.ErrorIs(t, webhook.Verify("secret", sig, "soon", body, time.Minute), webhook.ErrTimestamp)
	require.ErrorIs(t, webhook.Verify("secret", "", ts, body, time.Minute), webhook.ErrSignature)
}

func TestPerRecordErrors(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"errors":[{"index":1,"error":"invalid email"},{"index":3,"error":""}]}`)
	})
	d := open(t, map[string]any{"url": srv.URL}, opts)
	errs, err := d.Write(context.Background(), sampleBatch())
	require.NoError(t, err)
	require.Len(t, errs, 4)
	assert.NoError(t, errs[0])
	assert.EqualError(t, errs[1], "invalid email")
	assert.NoError(t, errs[2])
	assert.Error(t, errs[3], "an empty reason still fails the record")
}

func TestSuccessBodies(t *testing.T) {
	for _, body := range []string{``, `ok`, `{"ok":true}`, `{"errors":[]}`, `[1,2]`, `{"errors": "not a list"}`} {
		t.Run(body, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) })
			d := open(t, map[string]any{"url": srv.URL}, opts)
			errs, err := d.Write(context.Background(), sampleBatch())
			require.NoError(t, err)
			require.Len(t, errs, 4)
			for _, e := range errs {
				require.NoError(t, e)
			}
		})
	}
}

func TestPerRecordErrorOutOfRange(t *testing.T) {
	for _, body := range []string{`{"errors":[{"index":4,"error":"x"}]}`, `{"errors":[{"error":"x"}]}`, `{"errors":[{"index":-1,"error":"x"}]}`} {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) })
		d := open(t, map[string]any{"url": srv.URL}, opts)
		_, err := d.Write(context.Background(), sampleBatch())
		require.Error(t, err, body)
		assert.True(t, destination.IsPermanent(err), "a garbled answer must not lose failures: %v", err)
		assert.Contains(t, err.Error(), "record index")
	}
}

func TestStatusClassification(t *testing.T) {
	cases := []struct {
		status    int
		permanent bool
	}{
		{400, true}, {401, true}, {403, true}, {404, true}, {409, true}, {413, true}, {422, true},
		{408, false}, {425, false}, {429, false}, {500, false}, {502, false}, {503, false}, {504, false},
		{301, true}, {307, true},
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if c.status/100 == 3 {
					w.Header().Set("Location", "http://example.invalid/")
				}
				w.WriteHeader(c.status)
				_, _ = io.WriteString(w, "reason for "+strconv.Itoa(c.status))
			})
			d := open(t, map[string]any{"url": srv.URL}, opts)
			errs, err := d.Write(context.Background(), sampleBatch())
			require.Error(t, err)
			require.Nil(t, errs)
			assert.Equal(t, c.permanent, destination.IsPermanent(err), err)
			assert.Contains(t, err.Error(), fmt.Sprintf("HTTP %d", c.status))
			assert.Zero(t, destination.RetryAfter(err))
			if c.status/100 != 3 {
				assert.Contains(t, err.Error(), "reason for")
			}
		})
	}
}

func TestPermanentReason(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"message":"field email is required"}`)
	})
	d := open(t, map[string]any{"url": srv.URL}, opts)
	_, err := d.Write(context.Background(), sampleBatch())
	require.True(t, destination.IsPermanent(err))
	assert.EqualError(t, err, `HTTP 422: {"message":"field email is required"}`)
}

func TestErrorSnippetIsBounded(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, strings.Repeat("é", 5000))
	})
	d := open(t, map[string]any{"url": srv.URL}, opts)
	_, err := d.Write(context.Background(), sampleBatch())
	require.Error(t, err)
	msg := strings.TrimPrefix(err.Error(), "HTTP 400: ")
	assert.LessOrEqual(t, len(strings.TrimSuffix(msg, "…")), 300)
	assert.True(t, strings.HasSuffix(msg, "é…"), "cut on a rune boundary")
}

func TestRetryAfter(t *testing.T) {
	t.Run("seconds", func(t *testing.T) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		})
		d := open(t, map[string]any{"url": srv.URL}, opts)
		_, err := d.Write(context.Background(), sampleBatch())
		require.Error(t, err)
		assert.False(t, destination.IsPermanent(err))
		assert.Equal(t, 7*time.Second, destination.RetryAfter(err))
		assert.Contains(t, err.Error(), "HTTP 429")
	})
	t.Run("http-date", func(t *testing.T) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", time.Now().Add(2*time.Minute).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		d := open(t, map[string]any{"url": srv.URL}, opts)
		_, err := d.Write(context.Background(), sampleBatch())
		require.Error(t, err)
		assert.False(t, destination.IsPermanent(err))
		assert.InDelta(t, 2*time.Minute, destination.RetryAfter(err), float64(3*time.Second))
	})
	t.Run("garbage", func(t *testing.T) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "whenever")
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		d := open(t, map[string]any{"url": srv.URL}, opts)
		_, err := d.Write(context.Background(), sampleBatch())
		require.Error(t, err)
		assert.False(t, destination.IsPermanent(err))
		assert.Zero(t, destination.RetryAfter(err))
	})
}

func TestTimeoutIsTransient(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	o := opts
	o.Timeout = 50 * time.Millisecond
	d := open(t, map[string]any{"url": srv.URL}, o)
	start := time.Now()
	_, err := d.Write(context.Background(), sampleBatch())
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "timed out")
	assert.Less(t, time.Since(start), 3*time.Second)
}

func TestContextCancel(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	d := open(t, map[string]any{"url": srv.URL}, opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-started // cancel once the request is in flight
		cancel()
	}()
	_, err := d.Write(ctx, sampleBatch())
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, destination.IsPermanent(err))
}

func TestNetworkErrorIsTransientAndHidesURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/services/T0001/B0001/tokentokentoken"
	srv.Close() // nothing listens there any more
	d := open(t, map[string]any{"url": url}, opts)
	_, err := d.Write(context.Background(), sampleBatch())
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.NotContains(t, err.Error(), "tokentokentoken")
}

func TestSecretsNeverInErrors(t *testing.T) {
	const secret = "whsec_supersecretvalue"
	const token = "Bearer tok_abcdef123456"
	const urlToken = "urltoken987654"
	// A hostile or debugging endpoint that echoes the request headers.
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_ = r.Header.Write(w)
			_, _ = io.WriteString(w, r.URL.String())
		}
	}
	for _, status := range []int{400, 500} {
		srv := newServer(t, echo(status))
		d := open(t, map[string]any{
			"url":     srv.URL + "/" + urlToken,
			"secret":  secret,
			"headers": map[string]any{"Authorization": token},
		}, opts)
		_, err := d.Write(context.Background(), sampleBatch())
		require.Error(t, err)
		msg := err.Error()
		assert.Contains(t, msg, fmt.Sprintf("HTTP %d", status))
		assert.NotContains(t, msg, secret)
		assert.NotContains(t, msg, "tok_abcdef123456")
	}

	// A secret cut by the snippet's limit leaves no prefix behind.
	for pad := 280; pad < 300; pad++ {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, strings.Repeat("x", pad)+secret)
		})
		d := open(t, map[string]any{"url": srv.URL, "secret": secret}, opts)
		_, err := d.Write(context.Background(), sampleBatch())
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "whsec_")
	}

	// Per-record reasons are cleaned too.
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"errors":[{"index":0,"error":"bad auth %s"}]}`, r.Header.Get("Authorization"))
	})
	d := open(t, map[string]any{"url": srv.URL, "headers": map[string]any{"Authorization": token}}, opts)
	errs, err := d.Write(context.Background(), sampleBatch())
	require.NoError(t, err)
	require.Error(t, errs[0])
	assert.NotContains(t, errs[0].Error(), "tok_abcdef123456")

	// Config errors name the field, never the value.
	_, err = webhook.Open(map[string]any{"url": "ftp://user:" + secret + "@host/"}, opts)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	_, err = webhook.Open(map[string]any{"url": "http://x/", "headers": map[string]any{"Authorization": token + "\r\nX: y"}}, opts)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "tok_abcdef123456")
	assert.Contains(t, err.Error(), "Authorization")
}

func TestOpenValidation(t *testing.T) {
	cases := map[string]struct {
		cfg  map[string]any
		want string
	}{
		"missing url":     {map[string]any{}, "config.url is required"},
		"empty url":       {map[string]any{"url": " "}, "config.url is required"},
		"url not string":  {map[string]any{"url": 3}, "config.url: want a string"},
		"relative url":    {map[string]any{"url": "/hook"}, "config.url: want an absolute http"},
		"ftp url":         {map[string]any{"url": "ftp://host/x"}, "config.url: want an absolute http"},
		"no host":         {map[string]any{"url": "http:///x"}, "config.url: want an absolute http"},
		"bad method":      {map[string]any{"url": "http://h/", "method": "GET"}, `config.method: "GET"`},
		"headers list":    {map[string]any{"url": "http://h/", "headers": []any{"a"}}, "config.headers: want a map"},
		"header number":   {map[string]any{"url": "http://h/", "headers": map[string]any{"X-A": 1}}, "config.headers.X-A: want a string"},
		"header name":     {map[string]any{"url": "http://h/", "headers": map[string]any{"X A": "v"}}, `"X A" is not a valid header name`},
		"reserved header": {map[string]any{"url": "http://h/", "headers": map[string]any{"idempotency-key": "v"}}, "cannot be configured"},
		"empty secret":    {map[string]any{"url": "http://h/", "secret": ""}, "config.secret: is empty"},
		"secret number":   {map[string]any{"url": "http://h/", "secret": 5}, "config.secret: want a string"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := webhook.Open(c.cfg, opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}

	d, err := webhook.Open(map[string]any{"url": "https://h/", "headers": map[string]string{"X-A": "b"}}, config.DeliveryOptions{})
	require.NoError(t, err, "zero delivery options fall back to defaults")
	require.NoError(t, d.Close())
}

func TestConcurrentWrites(t *testing.T) {
	srv := newServer(t, nil)
	d := open(t, map[string]any{"url": srv.URL, "secret": "s3cret"}, opts)
	var wg sync.WaitGroup
	errc := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			b := sampleBatch()
			b.ID = fmt.Sprintf("batch-%d", i)
			_, err := d.Write(context.Background(), b)
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Len(t, srv.reqs, 20)
	seen := map[string]bool{}
	for _, r := range srv.reqs {
		var env struct {
			BatchID string `json:"batch_id"`
		}
		require.NoError(t, json.Unmarshal(r.body, &env))
		assert.Equal(t, r.header.Get("Idempotency-Key"), env.BatchID, "body and header agree: pooled buffers are not shared")
		require.NoError(t, webhook.Verify("s3cret", r.header.Get(webhook.HeaderSignature), r.header.Get(webhook.HeaderTimestamp), r.body, time.Minute))
		seen[env.BatchID] = true
	}
	assert.Len(t, seen, 20)
}
