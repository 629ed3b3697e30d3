package node_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination/apitest"
	"github.com/ebb-etl/ebb/libs/run"
)

// scripted answers each request with the next status of a script (after
// those of first, once), passing 200s on to a capture receiver, and logs
// when each request came.
type scripted struct {
	mu       sync.Mutex
	first    []int
	script   []int
	n        int
	attempts []time.Time
	sink     *capture.Server
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.attempts = append(s.attempts, time.Now())
	status := http.StatusOK
	if len(s.first) > 0 {
		status, s.first = s.first[0], s.first[1:]
	} else if len(s.script) > 0 {
		status = s.script[s.n%len(s.script)]
		s.n++
	}
	s.mu.Unlock()
	switch status {
	case http.StatusOK:
		s.sink.Handler().ServeHTTP(w, r)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "0")
		http.Error(w, "slow down", status)
	default:
		http.Error(w, fmt.Sprintf("scripted %d", status), status)
	}
}

// setFirst makes the next requests get these statuses, once.
func (s *scripted) setFirst(first []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.first = first
}

func (s *scripted) setScript(script []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script, s.n = script, 0
}

func startScripted(t *testing.T) (*scripted, string) {
	s := &scripted{sink: capture.New(capture.Options{})}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func versionsConfig(p *pg, url string, extra map[string]any) config.File {
	dest := map[string]any{"url": url, "batch_size": 5, "partitions": 4, "ack_window": 2, "retry_backoff": "5ms"}
	for k, v := range extra {
		dest[k] = v
	}
	return config.File{
		Sources:      []config.Source{{Name: "wh", Type: "postgres", Config: map[string]any{"dsn": postgresDSN(), "snapshot_schema": p.schema}}},
		Destinations: []config.Destination{{Name: "hook", Type: "webhook", Config: dest}},
		Syncs: []config.Sync{{
			Name: "versions", Source: "wh", Destination: "hook", Mode: config.ModeUpsert,
			Model: config.Model{SQL: "SELECT id, version FROM " + p.schema + ".k", PrimaryKey: []string{"id"}},
		}},
	}
}

// TestOrderPerKeyUnderFailures: 50 keys × 40 operations against a
// destination answering a script of 500, 429, 400 and 200. For every key,
// operations arrive in order, none that succeeded arrives twice, and the
// destination ends equal to the model.
func TestOrderPerKeyUnderFailures(t *testing.T) {
	p := newPG(t)
	p.exec(`CREATE TABLE $S.k (id int PRIMARY KEY, version int)`)
	p.exec(`INSERT INTO $S.k SELECT i, 0 FROM generate_series(1, 50) i`)
	srv, url := startScripted(t)
	// A 429 is a rate signal: delivery slows down after each one and
	// climbs back by a few percent a second (see limiter.go), so a 429 in
	// every 11 requests would bring the rate to its floor and the test to
	// minutes. The first run meets one; the 500s and the 400 go on.
	srv.setFirst([]int{200, 429})
	script := []int{200, 500, 200, 200, 200, 400, 200, 200, 500, 200, 200}
	srv.setScript(script)
	e := startEnv(t)
	e.apply(versionsConfig(p, url, nil))

	for v := 1; v <= 40; v++ {
		p.exec(`UPDATE $S.k SET version = $1`, v)
		r := e.runSync("versions")
		require.Contains(t, []run.State{run.Succeeded, run.Failed}, r.State, r.Error)
		require.EqualValues(t, r.Planned.Total(), r.Final())
	}
	srv.setScript(nil)
	r := e.runSync("versions") // whatever failed last is sent now
	require.Equal(t, run.Succeeded, r.State, r.Error)

	last := map[string]int64{}
	seen := map[string]bool{}
	for _, rec := range srv.sink.Records() {
		k := capture.KeyString(rec.Key)
		v, err := rec.Data["version"].(interface{ Int64() (int64, error) }).Int64()
		require.NoError(t, err)
		op := fmt.Sprintf("%s@%d", k, v)
		require.False(t, seen[op], "operation %s arrived twice", op)
		seen[op] = true
		require.Greater(t, v, last[k], "key %s: version %d arrived after %d", k, v, last[k])
		last[k] = v
	}
	require.Len(t, last, 50)
	for k, v := range last {
		require.EqualValues(t, 40, v, "key %s ends at the model's version", k)
	}
}

// TestFailingKeyDoesNotHoldUpOthers: one key's requests keep failing; with
// one record per request, every other key is delivered while it retries.
func TestFailingKeyDoesNotHoldUpOthers(t *testing.T) {
	p := newPG(t)
	p.exec(`CREATE TABLE $S.k (id int PRIMARY KEY, version int)`)
	p.exec(`INSERT INTO $S.k SELECT i, 1 FROM generate_series(1, 50) i`)
	sink, url := sink(t)
	sink.Reject(func(rec capture.Record) (int, string) {
		if capture.KeyString(rec.Key) == `{"id":13}` {
			return http.StatusServiceUnavailable, "down for this key"
		}
		return 0, ""
	})
	e := startEnv(t)
	e.apply(versionsConfig(p, url, map[string]any{"batch_size": 1, "retry_backoff": "200ms", "max_attempts": 6}))
	started, err := run.Start(t.Context(), e.plane.Bus, e.plane.Runs, "versions", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(sink.State()) == 49 }, 30*time.Second, 10*time.Millisecond)
	r, err := e.plane.Runs.Get(t.Context(), "versions", started.ID)
	require.NoError(t, err)
	require.False(t, r.State.Terminal(), "the failing key is still being retried")
	r = e.waitRun(started, time.Minute)
	require.Equal(t, run.Failed, r.State)
	require.EqualValues(t, 1, r.FailedRecords())
}

// TestAdaptsToRateLimit: a destination allowing R requests/s answers 429
// above it; Ebb's request rate comes down to about R and every record
// arrives.
func TestAdaptsToRateLimit(t *testing.T) {
	const limit = 20 // requests per second
	p := newPG(t)
	p.exec(`CREATE TABLE $S.k (id int PRIMARY KEY, version int)`)
	p.exec(`INSERT INTO $S.k SELECT i, 1 FROM generate_series(1, 150) i`)
	s := &rateLimited{limit: limit, sink: capture.New(capture.Options{})}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	e := startEnv(t)
	e.apply(versionsConfig(p, srv.URL, map[string]any{"batch_size": 1, "ack_window": 4, "max_attempts": 50}))

	r := e.runSync("versions")
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.Len(t, s.sink.State(), 150, "every record arrived")
	attempts := s.times()
	require.EqualValues(t, len(attempts)-150, r.Retries, "the run counts the requests retried after a 429")
	// After the first seconds of adapting, attempts stay near the limit.
	settled := attempts[len(attempts)/2:]
	span := settled[len(settled)-1].Sub(settled[0]).Seconds()
	rate := float64(len(settled)-1) / span
	require.LessOrEqual(t, rate, limit*1.3, "settled request rate %.1f/s vs limit %d/s", rate, limit)
}

// TestConfiguredRateIsNeverExceeded: with requests_per_second set, no
// one-second window holds more requests than the rate plus the burst.
func TestConfiguredRateIsNeverExceeded(t *testing.T) {
	p := newPG(t)
	p.exec(`CREATE TABLE $S.k (id int PRIMARY KEY, version int)`)
	p.exec(`INSERT INTO $S.k SELECT i, 1 FROM generate_series(1, 60) i`)
	srv, url := startScripted(t)
	e := startEnv(t)
	e.apply(versionsConfig(p, url, map[string]any{"batch_size": 1, "requests_per_second": 25, "burst": 1}))
	r := e.runSync("versions")
	require.Equal(t, run.Succeeded, r.State, r.Error)
	srv.mu.Lock()
	times := append([]time.Time(nil), srv.attempts...)
	srv.mu.Unlock()
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < time.Second; j++ {
			n++
		}
		require.LessOrEqual(t, n, 26, "requests in the second after request %d", i)
	}
}

// TestSlowDestinationOnlySlowsItsOwnSync: a destination taking 1s a request
// does not slow a sync to a fast one, and memory stays flat meanwhile.
func TestSlowDestinationOnlySlowsItsOwnSync(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 3000)
	slow, slowURL := sink(t)
	slow.SetLatency(time.Second)
	_, fastURL := sink(t)
	e := startEnv(t)
	f := pipelineConfig(p, config.ModeMirror, fastURL)
	f.Destinations = append(f.Destinations, config.Destination{Name: "slow", Type: "webhook",
		Config: map[string]any{"url": slowURL, "batch_size": 50, "partitions": 2, "ack_window": 1}})
	f.Syncs = append(f.Syncs, f.Syncs[0])
	f.Syncs[1].Name, f.Syncs[1].Destination = "customers_slow", "slow"
	e.apply(f)

	alone := time.Now()
	require.Equal(t, run.Succeeded, e.runSync("customers").State)
	aloneTook := time.Since(alone)
	p.exec(`UPDATE $S.customers SET score = score + 1`)

	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	slowRun, err := run.Start(t.Context(), e.plane.Bus, e.plane.Runs, "customers_slow", "manual")
	require.NoError(t, err)
	start := time.Now()
	fast := e.runSync("customers")
	fastTook := time.Since(start)
	require.Equal(t, run.Succeeded, fast.State, fast.Error)
	require.Less(t, fastTook, 3*aloneTook+2*time.Second, "fast sync took %s beside the slow one, %s alone", fastTook, aloneTook)
	r, err := e.plane.Runs.Get(t.Context(), "customers_slow", slowRun.ID)
	require.NoError(t, err)
	require.False(t, r.State.Terminal(), "the slow sync is still delivering")
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	require.Less(t, int64(after.HeapInuse)-int64(before.HeapInuse), int64(64<<20), "heap grew while the slow destination lagged")
}

// rateLimited lets limit requests a second through and answers 429 with
// Retry-After above that.
type rateLimited struct {
	mu       sync.Mutex
	limit    int
	window   []time.Time
	attempts []time.Time
	sink     *capture.Server
}

func (s *rateLimited) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	now := time.Now()
	s.attempts = append(s.attempts, now)
	for len(s.window) > 0 && now.Sub(s.window[0]) >= time.Second {
		s.window = s.window[1:]
	}
	allowed := len(s.window) < s.limit
	if allowed {
		s.window = append(s.window, now)
	}
	s.mu.Unlock()
	if !allowed {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return
	}
	s.sink.Handler().ServeHTTP(w, r)
}

func (s *rateLimited) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts...)
}

// TestCopiesShareTheConfiguredRate: with two delivery copies, the rate and
// burst configured on a destination hold for both together.
func TestCopiesShareTheConfiguredRate(t *testing.T) {
	p := newPG(t)
	p.exec(`CREATE TABLE $S.k (id int PRIMARY KEY, version int)`)
	p.exec(`INSERT INTO $S.k SELECT i, 1 FROM generate_series(1, 80) i`)
	srv, url := startScripted(t)
	e := startEnv(t)
	startServiceCopy(t, e, "delivery")
	// Once both copies have renewed their keys after both registered,
	// each has counted the other.
	revisions := func() map[string]uint64 {
		keys, err := e.plane.State.ListKeysFiltered(t.Context(), "member.delivery.*")
		require.NoError(t, err)
		out := map[string]uint64{}
		for k := range keys.Keys() {
			if e, err := e.plane.State.Get(t.Context(), k); err == nil {
				out[k] = e.Revision()
			}
		}
		return out
	}
	var both map[string]uint64
	require.Eventually(t, func() bool { both = revisions(); return len(both) == 2 }, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		now := revisions()
		for k, rev := range both {
			if now[k] <= rev {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "both copies recount")
	e.apply(versionsConfig(p, url, map[string]any{"batch_size": 1, "requests_per_second": 20, "burst": 2, "partitions": 4}))
	r := e.runSync("versions")
	require.Equal(t, run.Succeeded, r.State, r.Error)
	srv.mu.Lock()
	times := append([]time.Time(nil), srv.attempts...)
	srv.mu.Unlock()
	require.Len(t, times, 80)
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < time.Second; j++ {
			n++
		}
		require.LessOrEqual(t, n, 22, "requests in the second after request %d: the copies together exceed the rate", i)
	}
}

// TestRateLimitCountsRequestsNotBatches: Salesforce deletes go 25 to a
// composite request, so one batch of 100 deletes is 4 requests; the
// destination's rate holds for those requests, not only for the batches
// delivery hands the destination.
func TestRateLimitCountsRequestsNotBatches(t *testing.T) {
	p := newPG(t)
	p.exec(`CREATE TABLE $S.k (id text PRIMARY KEY, version int)`)
	p.exec(`INSERT INTO $S.k SELECT 'c' || i, 1 FROM generate_series(1, 100) i`)
	sf := apitest.NewSalesforce(t, "v62.0", "client", "secret", "")
	e := startEnv(t)
	f := versionsConfig(p, "http://unused", nil)
	f.Destinations[0] = config.Destination{Name: "hook", Type: "salesforce", Config: map[string]any{
		"instance_url": sf.URL(), "client_id": "client", "client_secret": "secret",
		"sobject": "Contact", "external_id_field": "Ebb_Id__c",
		"batch_size": 100, "requests_per_second": 2, "burst": 1, "partitions": 1,
	}}
	all := 1.0
	f.Syncs[0].Mode, f.Syncs[0].Safety.MaxDeleteShare = config.ModeMirror, &all
	f.Syncs[0].Mapping = []config.Mapping{{From: "id", To: "Ebb_Id__c"}, {From: "version", To: "Version__c"}}
	e.apply(f)
	require.Equal(t, run.Succeeded, e.runSync("versions").State)
	require.Equal(t, 100, sf.Count("Contact"))

	p.exec(`DELETE FROM $S.k`)
	start := time.Now()
	r := e.runSync("versions")
	took := time.Since(start)
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.Zero(t, sf.Count("Contact"))
	require.GreaterOrEqual(t, took, 1400*time.Millisecond,
		"4 composite requests at 2/s take 1.5s; one batch alone would take none (took %s)", took)
}

// A delivery copy that died without removing its key stops counting once
// the key expires, and the live copies clear it away.
func TestDeadDeliveryCopyIsForgotten(t *testing.T) {
	e := startEnv(t)
	ctx := t.Context()
	until, _ := time.Now().Add(-time.Minute).UTC().MarshalText()
	_, err := e.plane.State.Put(ctx, "member.delivery.dead-copy", until)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := e.plane.State.Get(ctx, "member.delivery.dead-copy")
		return err != nil
	}, 10*time.Second, 50*time.Millisecond, "the expired key is purged")
}

// TestRequestsAreFull: a first run of 2,000 rows at batch_size 100 over 4
// partitions goes out as 20 requests of 100 records. Before, each batch
// was spread over the lanes by key, and each lane's share made a full
// request and a part-filled one.
func TestRequestsAreFull(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 2000)
	s, url := sink(t)
	e := startEnv(t)
	f := pipelineConfig(p, config.ModeUpsert, url)
	f.Destinations[0].Config["batch_size"] = 100
	f.Destinations[0].Config["partitions"] = 4
	e.apply(f)
	r := e.runSync("customers")
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.Len(t, s.State(), 2000)
	require.Equal(t, 20, s.Batches(), "requests for 2,000 records at batch_size 100")
}
