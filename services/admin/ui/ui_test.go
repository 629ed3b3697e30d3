package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/quarantine"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/services/admin/ui"
)

const (
	xss         = `<script>alert("owned")</script>`
	secret      = "hunter2"
	safetyStop  = "planned deletes 190 of 200 rows (95%) exceed the limit of 50%"
	syncName    = "contacts"
	pausedSync  = "orders"
	wantSQLSafe = "&lt;script&gt;"
)

// fixture is the page mounted under /ui/ on a test server, over stores
// holding two syncs and three runs of the first.
type fixture struct {
	URL     string
	Handler http.Handler
	// Done is a succeeded run with counts and two failed records; Failed
	// failed with an error holding markup; Stopped awaits approval.
	Done, Failed, Stopped string
}

func start(t *testing.T, token string) *fixture {
	t.Helper()
	ns := natstest.Start(t)
	p, err := plane.Open(t.Context(), ns.JS)
	require.NoError(t, err)
	seedConfig(t, p.Configs)
	f := &fixture{}
	f.Done = seedRun(t, p.Runs, func(r *run.Run) {
		r.State, r.ModelRows, r.Extracted, r.Quarantined = run.Succeeded, 1200, 12, 4
		r.Planned = run.Planned{Adds: 7, Changes: 3, Deletes: 2}
		r.Adds = run.Outcome{Delivered: 7}
		r.Changes = run.Outcome{Delivered: 2, Failed: 1}
		r.Deletes = run.Outcome{Delivered: 1, Failed: 1}
		r.FinishedAt = r.StartedAt.Add(4200 * time.Millisecond)
	})
	failed := recordFailures(t, ns, f.Done)
	_, err = quarantine.New(p.State).Record(t.Context(), syncName, f.Done, failed[:1], 1)
	require.NoError(t, err)
	f.Failed = seedRun(t, p.Runs, func(r *run.Run) {
		r.State, r.Error = run.Failed, "model query failed: "+xss
	})
	f.Stopped = seedRun(t, p.Runs, func(r *run.Run) {
		r.State, r.SafetyStop = run.AwaitingApproval, safetyStop
		r.Planned = run.Planned{Deletes: 190}
	})
	_, err = run.PauseSync(t.Context(), p.State, p.Runs, pausedSync)
	require.NoError(t, err)

	h := ui.Handler(ui.Deps{Configs: p.Configs, Runs: p.Runs, JS: ns.JS, Token: token})
	mux := http.NewServeMux()
	mux.Handle("/ui/", http.StripPrefix("/ui", h))
	f.Handler = h
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL + "/ui/"
	return f
}

func seedConfig(t *testing.T, c *config.Store) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, c.Put(ctx, config.KindSource, "wh", config.Source{Name: "wh", Type: "postgres",
		Config: map[string]any{"dsn": "postgres://ebb:" + secret + "@db/wh"}}))
	require.NoError(t, c.Put(ctx, config.KindDestination, "hook", config.Destination{Name: "hook", Type: "webhook",
		Config: map[string]any{"url": "http://127.0.0.1:9/hook", "secret": "${HOOK_SECRET}"}}))
	for _, name := range []string{syncName, pausedSync} {
		require.NoError(t, c.Put(ctx, config.KindSync, name, config.Sync{
			Name: name, Source: "wh", Destination: "hook", Mode: config.ModeMirror, Schedule: "@every 5m",
			Model:   config.Model{SQL: "SELECT id, email FROM customers WHERE note <> '" + xss + "'", PrimaryKey: []string{"id"}},
			Mapping: []config.Mapping{{From: "email", To: "traits.email"}, {Const: "warehouse", To: "context.source"}},
		}))
	}
}

// seedRun creates a run of the sync and applies set to it, as the pipeline
// would, and returns its id.
func seedRun(t *testing.T, runs *run.Store, set func(*run.Run)) string {
	t.Helper()
	r, err := runs.Create(t.Context(), syncName, "manual")
	require.NoError(t, err)
	_, err = runs.Update(t.Context(), syncName, r.ID, func(r *run.Run) error {
		r.StartedAt = r.CreatedAt.Add(120 * time.Millisecond)
		set(r)
		return nil
	})
	require.NoError(t, err)
	return r.ID
}

// recordFailures records two failed results and one delivered, and returns
// the failed ones.
func recordFailures(t *testing.T, ns *natstest.Server, runID string) []record.Result {
	t.Helper()
	rb := record.ResultBatch{Sync: syncName, RunID: runID, Results: []record.Result{
		{KeyEnc: record.AppendInt(nil, 42), Op: record.OpUpsert, Status: record.Failed, Error: "422: email is invalid " + xss},
		{KeyEnc: record.AppendInt(nil, 43), Op: record.OpUpsert, Status: record.Delivered},
		{KeyEnc: record.AppendString(record.AppendInt(nil, 7), "eu"), Op: record.OpDelete, Status: record.Failed, Error: "404 not found"},
	}}
	require.NoError(t, run.RecordFailures(context.Background(), ns.Bus, rb))
	return []record.Result{rb.Results[0], rb.Results[2]}
}

// get fetches url with client (http.DefaultClient when nil) and returns
// the status and body.
func get(t *testing.T, client *http.Client, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// counts returns the numbers in the cells of the table row with id: for
// the run page's op rows, planned, delivered, failed and vanished.
func counts(t *testing.T, html, id string) []string {
	t.Helper()
	row := regexp.MustCompile(`(?s)<tr id="` + id + `"[^>]*>(.*?)</tr>`).FindStringSubmatch(html)
	require.NotNil(t, row, "no row %q in:\n%s", id, html)
	var out []string
	for _, m := range regexp.MustCompile(`<td[^>]*>(\d+)</td>`).FindAllStringSubmatch(row[1], -1) {
		out = append(out, m[1])
	}
	return out
}

func TestOverview(t *testing.T) {
	f := start(t, "")
	code, body := get(t, nil, f.URL)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `href="./syncs/contacts"`, "links are relative to the mount point")
	require.Contains(t, body, "wh → hook")
	require.Contains(t, body, "@every 5m")
	require.Contains(t, body, `href="./runs/`+f.Stopped+`"`, "the last run of the sync is shown")
	require.Contains(t, body, ">awaiting_approval<")
	require.Contains(t, body, ">paused<", "the paused sync is marked")
	require.Contains(t, body, "never run")
	require.Contains(t, body, `http-equiv="refresh"`, "a run is active, so the page refreshes")
	require.NotContains(t, body, secret)
	require.NotContains(t, body, "HOOK_SECRET")

	code, css := get(t, nil, f.URL+"style.css")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, css, ".s-failed")

	// Mounted with the prefix's trailing slash stripped too, it still works.
	other := httptest.NewServer(http.StripPrefix("/ebb/", f.Handler))
	t.Cleanup(other.Close)
	code, body = get(t, nil, other.URL+"/ebb/syncs/"+syncName)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `href="../style.css"`)
}

func TestSyncPage(t *testing.T) {
	f := start(t, "")
	code, body := get(t, nil, f.URL+"syncs/"+syncName)
	require.Equal(t, http.StatusOK, code, body)
	for _, id := range []string{f.Done, f.Failed, f.Stopped} {
		require.Contains(t, body, `href="../runs/`+id+`"`)
	}
	require.Contains(t, body, "safety stop: "+safetyStop)
	require.Equal(t, []string{"7", "3", "2", "10", "2", "0", "4"}, counts(t, body, "run-"+f.Done),
		"planned adds/changes/deletes, delivered, failed, vanished, quarantined")
	require.Contains(t, body, "1 key(s) held")
	require.Contains(t, body, "traits.email")
	require.Contains(t, body, `<code>&#34;warehouse&#34;</code>`, "constants are shown as JSON")
	require.Contains(t, body, wantSQLSafe, "the model SQL is escaped")
	require.NotContains(t, body, xss)
	require.NotContains(t, body, secret)

	_, body = get(t, nil, f.URL+"syncs/"+pausedSync)
	require.Contains(t, body, "ebb sync resume "+pausedSync)
	require.Contains(t, body, "No runs yet")
}

func TestRunPage(t *testing.T) {
	f := start(t, "")
	code, body := get(t, nil, f.URL+"runs/"+f.Done)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, []string{"7", "7", "0", "0"}, counts(t, body, "adds"))
	require.Equal(t, []string{"3", "2", "1", "0"}, counts(t, body, "changes"))
	require.Equal(t, []string{"2", "1", "1", "0"}, counts(t, body, "deletes"))
	require.Equal(t, []string{"12", "10", "2", "0"}, counts(t, body, "total"))
	require.Contains(t, body, `href="../syncs/contacts"`)
	require.Contains(t, body, ">succeeded<")
	require.Contains(t, body, "422: email is invalid &lt;script&gt;", "failure errors are escaped")
	require.Contains(t, body, ">7,eu<")
	require.Contains(t, body, ">quarantined<", "key 42 is quarantined")
	require.NotContains(t, body, ">43<", "delivered records are not failures")
	require.NotContains(t, body, xss)
	require.NotContains(t, body, `http-equiv="refresh"`, "a finished run does not refresh")

	_, body = get(t, nil, f.URL+"runs/"+f.Failed)
	require.Contains(t, body, "model query failed: &lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;")
	require.NotContains(t, body, xss)

	_, body = get(t, nil, f.URL+"runs/"+f.Stopped)
	require.Contains(t, body, safetyStop)
	require.Contains(t, body, "ebb runs approve "+f.Stopped)
	require.Contains(t, body, `<meta http-equiv="refresh" content="2">`, "an active run refreshes every 2 s")
}

func TestNotFound(t *testing.T) {
	f := start(t, "")
	for path, want := range map[string]string{
		"syncs/nope": "There is no sync named &#34;nope&#34;.",
		"syncs/" + url.PathEscape("<script>alert(1)"): "There is no sync named &#34;&lt;script&gt;alert(1)&#34;.",
		"runs/" + run.NewID():                         "There is no run",
		"runs/" + url.PathEscape("<x> *"):             "There is no run &#34;&lt;x&gt; *&#34;.",
		"runs/a.b":                                    "There is no run &#34;a.b&#34;.",
		"elsewhere":                                   "no page at /elsewhere",
		"api/runs/" + f.Done[1:]:                      `"error": "There is no run`,
	} {
		code, body := get(t, nil, f.URL+path)
		require.Equal(t, http.StatusNotFound, code, path)
		require.Contains(t, body, want, path)
		require.NotContains(t, body, "<script>", path)
	}
}

func TestAPI(t *testing.T) {
	f := start(t, "")
	code, body := get(t, nil, f.URL+"api/runs/"+f.Done)
	require.Equal(t, http.StatusOK, code, body)
	var got struct {
		Run struct {
			Planned run.Planned `json:"planned"`
			Total   run.Outcome `json:"total"`
		} `json:"run"`
		Failures []struct{ Key, Error string } `json:"failures"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	require.Equal(t, run.Planned{Adds: 7, Changes: 3, Deletes: 2}, got.Run.Planned)
	require.Equal(t, run.Outcome{Delivered: 10, Failed: 2}, got.Run.Total)
	require.Len(t, got.Failures, 2)

	_, body = get(t, nil, f.URL+"api/syncs")
	require.Contains(t, body, `"name": "orders"`)
	require.NotContains(t, body, secret)
}

func TestToken(t *testing.T) {
	const token = "s3cret-token"
	f := start(t, token)
	page := f.URL + "syncs/" + syncName

	code, body := get(t, nil, page)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, body, "Authorization: Bearer")
	code, _ = get(t, nil, page, "Authorization", "Bearer wrong")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = get(t, nil, page+"?token=wrong")
	require.Equal(t, http.StatusUnauthorized, code)
	code, body = get(t, nil, page, "Authorization", "Bearer "+token)
	require.Equal(t, http.StatusOK, code, body)

	// ?token= sets a cookie scoped to the mount point and redirects to
	// the page without the token.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, page+"?token="+token+"&x=1", nil)
	require.NoError(t, err)
	resp, err := noFollow.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "./"+syncName+"?x=1", resp.Header.Get("Location"))
	require.Len(t, resp.Cookies(), 1)
	require.Equal(t, "/ui/", resp.Cookies()[0].Path)
	require.True(t, resp.Cookies()[0].HttpOnly)

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar}
	code, body = get(t, browser, f.URL+"?token="+token)
	require.Equal(t, http.StatusOK, code, body)
	code, body = get(t, browser, f.URL+"runs/"+f.Done)
	require.Equal(t, http.StatusOK, code, "the cookie carries the token: %s", body)
}

// TestChromium renders the pages in headless Chromium, as people see them,
// and checks a run's counts in the rendered DOM. It logs screenshot paths.
func TestChromium(t *testing.T) {
	bin := chromium(t)
	const token = "s3cret-token"
	f := start(t, token)
	dir := artifacts(t)

	dom := runChromium(t, bin, "--dump-dom", f.URL+"runs/"+f.Done+"?token="+token)
	require.Equal(t, []string{"7", "7", "0", "0"}, counts(t, dom, "adds"))
	require.Equal(t, []string{"3", "2", "1", "0"}, counts(t, dom, "changes"))
	require.Equal(t, []string{"2", "1", "1", "0"}, counts(t, dom, "deletes"))
	require.Equal(t, []string{"12", "10", "2", "0"}, counts(t, dom, "total"))
	require.Contains(t, dom, "7,eu")
	require.NotContains(t, dom, xss)

	for name, url := range map[string]string{
		"ui-run.png":   f.URL + "runs/" + f.Done,
		"ui-syncs.png": f.URL,
		"ui-sync.png":  f.URL + "syncs/" + syncName,
	} {
		shot := filepath.Join(dir, name)
		runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,900", url+"?token="+token)
		png, err := os.ReadFile(shot)
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(png, []byte("\x89PNG")), "%s is not a PNG", shot)
		t.Logf("screenshot: %s", shot)
	}
}

// chromium finds the browser: Debian's chromium package. CI installs it
// (scripts/ci-services.sh); a short run without it skips.
func chromium(t *testing.T) string {
	bin, err := exec.LookPath("chromium")
	if err == nil {
		return bin
	}
	if testing.Short() {
		t.Skip("chromium not installed; skipped in -short mode")
	}
	t.Fatal("chromium not found on PATH: install Debian's chromium package " +
		"(apt-get install -y chromium, as scripts/ci-services.sh does) to test the admin web page")
	return ""
}

// artifacts is where screenshots go: $EBB_TEST_ARTIFACTS when set, so CI
// keeps them, else the test's temp dir.
func artifacts(t *testing.T) string {
	dir := os.Getenv("EBB_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// runChromium runs headless Chromium with its own profile and returns its
// output.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
		"--no-first-run", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium %s: %s", strings.Join(args, " "), lastLines(stderr.String(), 20))
	return string(out)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
