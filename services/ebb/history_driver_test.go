package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// The driver of the history test: rounds of named actions drawn from the
// seed. Each round changes the model, sets each destination's faults,
// triggers both syncs and makes one disruption (a kill hunting a phase, a
// random kill, a cancel, a pause and resume, a retry of quarantined keys, a
// NATS or Postgres restart, or nothing), then gives the runs a moment.
//
// Everything is drawn from the seed in the same order whatever happens,
// so a seed replays the same model changes, faults and disruptions, but
// for one thing: a must-do disruption that did not happen as meant (a hunt
// whose kill missed its phase) is tried again in a later round, which
// shifts the ones after it. Where kills land depends on timing.

// Phases a kill can hunt, and the service that owns each.
var phaseOwner = map[string]string{
	string(run.Diffing):    "differ",
	string(run.Extracting): "extractor",
	string(run.Delivering): "delivery",
	string(run.Committing): "differ",
}

// Disruptions.
const (
	disKillDiffing    = "kill-in-diffing"
	disKillExtracting = "kill-in-extracting"
	disKillDelivering = "kill-in-delivering"
	disKillCommitting = "kill-in-committing"
	disKillRandom     = "kill-random"
	disCancel         = "cancel"
	disPause          = "pause-resume"
	disRetry          = "retry-quarantined"
	disRestartNATS    = "restart-nats"
	disRestartPG      = "restart-postgres"
	disQuiet          = "quiet"
)

type disruptionWeight struct {
	name   string
	weight int
}

// disruptionWeights is how often each is drawn once the must-do list is done.
var disruptionWeights = []disruptionWeight{
	{disKillDiffing, 2}, {disKillExtracting, 2}, {disKillDelivering, 2}, {disKillCommitting, 2},
	{disKillRandom, 3}, {disCancel, 3}, {disPause, 3}, {disRetry, 2},
	{disRestartNATS, 1}, {disRestartPG, 1}, {disQuiet, 1},
}

// faults are one destination's misbehaviour for a round.
type faults struct {
	latency  time.Duration
	flaky    int // every n-th request answers 500
	rate     float64
	reject   map[string]bool // keys answered 422 (the batch is split to find them)
	fail     map[string]bool // keys failed in a 200's per-record errors
	downFor  time.Duration   // answers 503 for this long, starting downAt into the round
	downAt   time.Duration
	describe string
}

// round is everything drawn for one round.
type round struct {
	n          int
	change     modelChange
	followUp   modelChange
	faults     []faults // per destination
	disruption string
	sync       int           // the sync a cancel, pause or retry acts on
	service    string        // the service a random kill kills
	delay      time.Duration // before a random kill or a NATS restart
	hold       time.Duration // how long a pause or a restart lasts
	node       int           // the NATS node a cluster restart restarts
	pgMode     string        // fast or immediate
	phase      string        // the phase a pause pauses in
}

type driver struct {
	env  *historyEnv
	rng  *rand.Rand
	must []string        // disruptions still to do at least once (hunts: to land)
	hot  []int64         // the ids the last round updated
	only map[string]bool // HISTORY_DISRUPTIONS: draw only these

	kicked time.Time     // when kick last asked for runs
	timers []*time.Timer // destinations going down later in the round
}

// draw draws the next round from the seed.
func (d *driver) draw(n int) round {
	rng, rows := d.rng, int64(d.env.rows)
	r := round{n: n}
	// Model changes: up to 2.5% of the rows each, among the ids so far
	// (the highest id depends only on earlier draws).
	size := func() int { return 1 + rng.IntN(max(int(rows)/40, 2)) }
	maxID := d.env.model.maxID
	pick := func(k int) []int64 {
		ids := make([]int64, k)
		for i := range ids {
			ids[i] = 1 + rng.Int64N(maxID)
		}
		return ids
	}
	// Half the updates and deletes hit the keys the last round updated,
	// so consecutive runs often carry the same keys: a late write of an
	// earlier run then shows as a key going back in time.
	hot := func(k int) []int64 {
		ids := pick(k)
		for i := 0; i < len(ids) && len(d.hot) > 0; i += 2 {
			ids[i] = d.hot[rng.IntN(len(d.hot))]
		}
		return ids
	}
	r.change = modelChange{update: hot(size()), delete: hot(size() / 2), readd: pick(size() / 3), insert: size() / 2}
	if rng.IntN(4) > 0 {
		r.change.note = fmt.Sprintf("round %d", n)
	}
	d.hot = r.change.update
	// A follow-up change, for a disruption that changes the model again
	// mid-round: the same keys, newer versions.
	r.followUp = modelChange{update: r.change.update, delete: pick(size() / 4), note: fmt.Sprintf("round %d, again", n)}
	// Faults, per destination.
	for range d.env.dests {
		var f faults
		var what []string
		if rng.IntN(2) == 0 {
			f.latency = []time.Duration{20 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond}[rng.IntN(3)]
			what = append(what, "slow "+f.latency.String())
		}
		if rng.IntN(3) == 0 {
			f.flaky = 3 + rng.IntN(6)
			what = append(what, fmt.Sprintf("500 every %d requests", f.flaky))
		}
		if rng.IntN(4) == 0 {
			f.rate = 10 + float64(rng.IntN(20))
			what = append(what, fmt.Sprintf("429 over %.0f/s", f.rate))
		}
		if rng.IntN(3) == 0 {
			f.reject = keySet(r.change.update[:min(2, len(r.change.update))])
			what = append(what, fmt.Sprintf("422 for %d keys", len(f.reject)))
		}
		if rng.IntN(3) == 0 {
			f.fail = keySet(r.change.update[:len(r.change.update)/3])
			what = append(what, fmt.Sprintf("per-record errors for %d keys", len(f.fail)))
		}
		if rng.IntN(6) == 0 {
			f.downAt = time.Duration(rng.Int64N(int64(2 * time.Second)))
			f.downFor = 500*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))
			what = append(what, fmt.Sprintf("503 for %s", f.downFor))
		}
		f.describe = strings.Join(what, ", ")
		if f.describe == "" {
			f.describe = "healthy"
		}
		r.faults = append(r.faults, f)
	}
	// The disruption: always drawn, so the draws do not depend on what the
	// must-do list holds.
	total := 0
	for _, w := range disruptionWeights {
		if d.only == nil || d.only[w.name] {
			total += w.weight
		}
	}
	x := rng.IntN(total)
	for _, w := range disruptionWeights {
		if d.only != nil && !d.only[w.name] {
			continue
		}
		if x -= w.weight; x < 0 {
			r.disruption = w.name
			break
		}
	}
	r.sync = rng.IntN(len(d.env.dests))
	r.service = chaosServices[rng.IntN(len(chaosServices))]
	r.delay = time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
	r.hold = 300*time.Millisecond + time.Duration(rng.Int64N(int64(1200*time.Millisecond)))
	r.node = rng.IntN(3)
	r.pgMode = []string{"fast", "immediate"}[rng.IntN(2)]
	r.phase = []string{string(run.Diffing), string(run.Extracting), string(run.Delivering)}[rng.IntN(3)]
	if len(d.must) > 0 {
		r.disruption = d.must[0]
	}
	return r
}

func keySet(ids []int64) map[string]bool {
	s := map[string]bool{}
	for _, id := range ids {
		s[itemKey(id)] = true
	}
	return s
}

// chaos runs rounds for d, and for up to half as long again while
// must-do disruptions remain.
func (d *driver) chaos(dur time.Duration) {
	start := time.Now()
	more := func() bool {
		return time.Since(start) < dur || len(d.must) > 0 && time.Since(start) < dur*2
	}
	for n := 1; more(); n++ {
		r := d.draw(n)
		d.env.rec.logf("round %d: %s; faults %s; %s", n, r.change, describeFaults(d.env.dests, r.faults), r.disruption)
		d.setFaults(r)
		if err := d.env.model.apply(r.change); err != nil {
			d.env.t.Fatalf("changing the model: %v", err)
		}
		done := d.disrupt(r)
		if len(d.must) > 0 && d.must[0] == r.disruption {
			d.must = d.must[1:]
			if !done {
				d.must = append(d.must, r.disruption) // try again later
			}
		}
		d.waitRuns(3 * time.Second)
	}
}

func describeFaults(dests []checkedDest, fs []faults) string {
	var parts []string
	for i, f := range fs {
		parts = append(parts, dests[i].name+": "+f.describe)
	}
	return strings.Join(parts, "; ")
}

// setFaults makes each destination misbehave as drawn.
func (d *driver) setFaults(r round) {
	d.clearFaults()
	for i, f := range r.faults {
		hook := d.env.dests[i].hook
		hook.SetLatency(f.latency)
		hook.SetFlaky(f.flaky)
		hook.SetRateLimit(f.rate, time.Second)
		hook.SetDown(false)
		hook.Reject(keysFn(f.reject, 422, "rejected by the history test"))
		hook.Fail(func(rec capture.Record) string {
			if f.fail[capture.KeyString(rec.Key)] {
				return "failed by the history test"
			}
			return ""
		})
		if f.downFor > 0 {
			d.timers = append(d.timers, time.AfterFunc(f.downAt, func() {
				hook.SetDown(true)
				time.AfterFunc(f.downFor, func() { hook.SetDown(false) })
			}))
		}
	}
}

func keysFn(keys map[string]bool, status int, reason string) func(capture.Record) (int, string) {
	return func(rec capture.Record) (int, string) {
		if keys[capture.KeyString(rec.Key)] {
			return status, reason
		}
		return 0, ""
	}
}

// clearFaults makes every destination healthy.
func (d *driver) clearFaults() {
	for _, t := range d.timers {
		t.Stop()
	}
	d.timers = nil
	for _, dst := range d.env.dests {
		dst.hook.SetLatency(0)
		dst.hook.SetFlaky(0)
		dst.hook.SetRateLimit(0, 0)
		dst.hook.SetDown(false)
		dst.hook.Reject(nil)
		dst.hook.Fail(nil)
	}
}

// disrupt triggers both syncs and makes the round's disruption; it reports
// whether the disruption happened as meant (a hunted kill landed in its
// phase, a restart found a run active).
func (d *driver) disrupt(r round) bool {
	env := d.env
	sync := env.dests[r.sync].sync
	switch r.disruption {
	case disKillDiffing, disKillExtracting, disKillDelivering, disKillCommitting:
		// A hunt needs runs to come and go: no slow or rate-limited
		// destinations meanwhile (failures stay).
		for _, dst := range env.dests {
			dst.hook.SetLatency(0)
			dst.hook.SetRateLimit(0, 0)
		}
	}
	switch r.disruption {
	case disKillDiffing, disKillExtracting:
		// A slow warehouse: a scan of the model takes about 1.5s.
		must(env, env.model.setPause(d.slowScan()))
		defer func() { must(env, env.model.setPause(0)) }()
		d.triggerAll()
		return d.hunt(strings.TrimPrefix(r.disruption, "kill-in-"), 15*time.Second)
	case disKillDelivering:
		for _, dst := range env.dests {
			dst.hook.SetLatency(300 * time.Millisecond)
		}
		d.triggerAll()
		return d.hunt(string(run.Delivering), 30*time.Second)
	case disKillCommitting:
		// Records that fail make the commit patch the whole snapshot and
		// count the failures towards quarantine: a commit long enough to
		// be cut short.
		fail := keySet(r.change.update)
		for _, dst := range env.dests {
			dst.hook.Fail(func(rec capture.Record) string {
				if fail[capture.KeyString(rec.Key)] {
					return "failed by the history test, so the commit has work"
				}
				return ""
			})
		}
		d.triggerAll()
		// A run resending a stopped run's keys can deliver for a while
		// before it commits.
		return d.hunt(string(run.Committing), 30*time.Second)
	case disKillRandom:
		d.triggerAll()
		time.Sleep(r.delay)
		d.kill(r.service, kill{service: r.service})
		return true
	case disCancel:
		// Cancel a run while its destination fails, so requests are being
		// retried; change the same keys again and start the next run as
		// the destination comes back. The cancelled run must not write
		// after the next one.
		hook := env.dests[r.sync].hook
		hook.SetDown(true)
		defer hook.SetDown(false)
		d.triggerAll()
		delivering := d.waitPhase([]string{string(run.Delivering)}, 10*time.Second, sync)
		rn := env.rec.latest(sync)
		if rn == nil || rn.State.Terminal() {
			return false
		}
		out, err := env.cli("runs", "cancel", rn.ID)
		env.rec.logf("ebb runs cancel %s (sync %s, %s, its destination down): %s%s", rn.ID, sync, rn.State, strings.TrimSpace(out), errSuffix(err))
		must(env, env.model.apply(r.followUp))
		env.rec.logf("changed the model again: %s", r.followUp)
		d.triggerAll()
		time.Sleep(r.hold)
		return delivering && err == nil
	case disPause:
		// Pause a run in a phase (a slow model for diffing and
		// extracting, a slow destination for delivering), hold, resume.
		switch r.phase {
		case string(run.Diffing), string(run.Extracting):
			must(env, env.model.setPause(d.slowScan()))
			defer func() { must(env, env.model.setPause(0)) }()
		default:
			env.dests[r.sync].hook.SetLatency(300 * time.Millisecond)
		}
		d.triggerAll()
		inPhase := d.waitPhase([]string{r.phase}, 10*time.Second, sync)
		out, err := env.cli("sync", "pause", sync)
		env.rec.logf("ebb sync pause %s (its run %s): %s%s", sync, r.phase, strings.TrimSpace(out), errSuffix(err))
		time.Sleep(r.hold)
		d.resume(sync)
		return inPhase && err == nil
	case disRetry:
		// Release quarantined keys while a run is under way.
		d.triggerAll()
		active := d.waitPhase([]string{string(run.Extracting), string(run.Delivering)}, 10*time.Second, sync)
		out, err := env.cli("sync", "retry", sync)
		env.rec.logf("ebb sync retry %s (its run %s): %s%s", sync, stateOf(env.rec.latest(sync)),
			strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "), errSuffix(err))
		return active && err == nil
	case disRestartNATS:
		d.triggerAll()
		if !d.waitActive(10 * time.Second) {
			return false
		}
		time.Sleep(r.delay / 3)
		env.rec.logf("restarting NATS (%s) mid-run: runs %s; down %s", env.nats.describe(r.node), d.states(), r.hold)
		if err := env.nats.restart(r.node, r.hold); err != nil {
			env.t.Fatalf("restarting NATS: %v", err)
		}
		env.rec.logf("NATS is back")
		env.restarts["nats"]++
		return true
	case disRestartPG:
		// Slow scans, so the restart finds the differ or the extractor
		// reading.
		must(env, env.model.setPause(d.slowScan()))
		d.triggerAll()
		if !d.waitPhase([]string{string(run.Diffing), string(run.Extracting)}, 10*time.Second) {
			must(env, env.model.setPause(0))
			return false
		}
		env.rec.logf("restarting Postgres (stop -m %s) mid-run: runs %s; down %s", r.pgMode, d.states(), r.hold)
		if err := env.pg.Restart(r.pgMode, r.hold); err != nil {
			env.t.Fatalf("restarting Postgres: %v", err)
		}
		env.model.pool.Reset()
		env.rec.logf("Postgres is back")
		env.restarts["postgres"]++
		must(env, env.model.setPause(0))
		return true
	default:
		d.triggerAll()
		return true
	}
}

// slowScan is the model's pause (see historyModel.setPause) that makes a
// scan of the whole model last about 1.5s.
func (d *driver) slowScan() int { return max(1500*50/d.env.rows, 5) }

func must(env *historyEnv, err error) {
	if err != nil {
		env.t.Fatalf("history test: %v", err)
	}
}

func errSuffix(err error) string {
	if err != nil {
		return " (" + err.Error() + ")"
	}
	return ""
}

// triggerAll asks for a run of each sync, as `ebb sync run` does; one that
// is active or paused refuses, which is fine.
func (d *driver) triggerAll() {
	for _, dst := range d.env.dests {
		d.env.trigger(dst.sync, "")
	}
}

// kick, called while waiting for a run to reach a phase, asks again for
// runs of the syncs whose last run is over, once a second at most.
func (d *driver) kick() {
	if time.Since(d.kicked) < time.Second {
		return
	}
	d.kicked = time.Now()
	for _, dst := range d.env.dests {
		if rn := d.env.rec.latest(dst.sync); rn == nil || rn.State.Terminal() {
			d.env.trigger(dst.sync, "")
		}
	}
}

// trigger asks the admin API for a run of sync and logs the run started.
func (e *historyEnv) trigger(sync, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := e.admin.TriggerRun(ctx, &adminv1.TriggerRunRequest{Sync: sync})
	if err == nil {
		e.rec.logf("%striggered run %s of %s", why, resp.GetRun().GetId(), sync)
	}
}

// resume resumes a sync, trying until the admin API answers.
func (d *driver) resume(sync string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := d.env.cli("sync", "resume", sync)
		if err == nil || time.Now().After(deadline) {
			d.env.rec.logf("ebb sync resume %s: %s%s", sync, strings.TrimSpace(out), errSuffix(err))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hunt waits for a run of either sync to be in phase, then kills the
// phase's owner with SIGKILL and restarts it. It reports whether the kill
// landed: the run was still in the phase once the process was dead.
func (d *driver) hunt(phase string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		d.kick()
		changed := d.env.rec.waitChange()
		for _, dst := range d.env.dests {
			rn := d.env.rec.latest(dst.sync)
			if rn == nil || string(rn.State) != phase {
				continue
			}
			k := kill{service: phaseOwner[phase], sync: rn.Sync, run: rn.ID, phase: phase}
			d.kill(k.service, k)
			return d.lastKillLanded()
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
	d.env.rec.logf("no run was %s within %s: no kill", phase, within)
	return false
}

func (d *driver) lastKillLanded() bool {
	d.env.rec.mu.Lock()
	defer d.env.rec.mu.Unlock()
	return d.env.rec.kills[len(d.env.rec.kills)-1].landed
}

// kill kills a service with SIGKILL, notes whether a hunted run was still
// in its phase once the process was dead, and starts the service again.
func (d *driver) kill(service string, k kill) {
	env := d.env
	args := env.ps.get(service).args
	env.ps.kill(service)
	k.at = time.Now()
	if k.run != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rn, err := env.plane.Runs.Get(ctx, k.sync, k.run)
		cancel()
		k.landed = err == nil && string(rn.State) == k.phase
		env.rec.logf("kill -9 %s while run %s of %s is %s: landed=%v (now %s)", service, k.run, k.sync, k.phase, k.landed, stateOf(rn))
	} else {
		env.rec.logf("kill -9 %s (runs %s)", service, d.states())
	}
	env.rec.addKill(k)
	env.ps.start(service, args...)
}

func stateOf(rn *run.Run) string {
	if rn == nil {
		return "?"
	}
	return string(rn.State)
}

// states describes each sync's newest run.
func (d *driver) states() string {
	var parts []string
	for _, dst := range d.env.dests {
		rn := d.env.rec.latest(dst.sync)
		parts = append(parts, dst.sync+"="+stateOf(rn))
	}
	return strings.Join(parts, " ")
}

// waitActive waits until some sync has a run that is not over.
func (d *driver) waitActive(within time.Duration) bool {
	return d.waitPhase(nil, within)
}

// waitPhase waits until the newest run of one of syncs (of any sync if
// none is named) is in one of phases (any state not over when phases is
// nil).
func (d *driver) waitPhase(phases []string, within time.Duration, syncs ...string) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		d.kick()
		changed := d.env.rec.waitChange()
		for _, dst := range d.env.dests {
			if len(syncs) > 0 && !slices.Contains(syncs, dst.sync) {
				continue
			}
			rn := d.env.rec.latest(dst.sync)
			if rn == nil || rn.State.Terminal() {
				continue
			}
			if phases == nil || slices.Contains(phases, string(rn.State)) {
				return true
			}
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// waitRuns gives the syncs' runs up to within to end.
func (d *driver) waitRuns(within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		changed := d.env.rec.waitChange()
		over := true
		for _, dst := range d.env.dests {
			if rn := d.env.rec.latest(dst.sync); rn != nil && !rn.State.Terminal() {
				over = false
			}
		}
		if over {
			return
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// settle stops the chaos and drives both syncs until a run plans nothing:
// faults off, every process up (one that exited on its own is a
// violation), the syncs resumed, quarantined keys retried, runs triggered
// until one, started after the chaos, succeeds with nothing planned. A run
// whose state and counts stop moving for a while is a liveness violation;
// it is cancelled so the sync can go on. settle reports whether both syncs
// settled within the time given.
func (d *driver) settle(c *checker, within time.Duration) bool {
	env := d.env
	d.clearFaults()
	must(env, env.model.setPause(0))
	for _, svc := range chaosServices {
		if !env.ps.running(svc) {
			c.add(violation{invariant: invNoCrash, detail: fmt.Sprintf("service %s exited on its own; the end of its log:\n%s",
				svc, tailLines(env.ps.readLog(svc), 15))})
			env.ps.start(svc, env.ps.get(svc).args...)
		}
	}
	for _, dst := range env.dests {
		d.resume(dst.sync)
	}
	const stuckAfter = 25 * time.Second // retry_for (20s) and ack waits, with room
	start := time.Now()
	deadline := start.Add(within)
	settled := map[string]bool{}
	type progress struct {
		mark  string
		since time.Time
	}
	moved := map[string]progress{} // run id -> its last state and counts, and since when
	stuck := map[string]bool{}     // syncs with a run stuck for good
	for len(settled)+len(stuck) < len(env.dests) && time.Now().Before(deadline) {
		changed := env.rec.waitChange()
		for _, dst := range env.dests {
			if settled[dst.sync] || stuck[dst.sync] {
				continue
			}
			rn := env.rec.latest(dst.sync)
			switch {
			case rn != nil && !rn.State.Terminal():
				mark := fmt.Sprintf("%s %d %d %d", rn.State, rn.Extracted, rn.Final(), rn.Retries)
				if p, ok := moved[rn.ID]; !ok || p.mark != mark {
					moved[rn.ID] = progress{mark: mark, since: time.Now()}
				} else if time.Since(p.since) > stuckAfter {
					c.add(violation{invariant: invLiveness, detail: fmt.Sprintf("run %s of %s made no progress for %s after the chaos (state %s, %d extracted, %d of %d final); its path: %s",
						rn.ID, dst.sync, stuckAfter, rn.State, rn.Extracted, rn.Final(), rn.Planned.Total(), env.rec.trace(rn.ID))})
					out, err := env.cli("runs", "cancel", rn.ID)
					env.rec.logf("settle: cancelling stuck run %s: %s%s", rn.ID, strings.TrimSpace(out), errSuffix(err))
					moved[rn.ID] = progress{mark: mark, since: time.Now().Add(time.Hour)} // report it once
					if err != nil {
						stuck[dst.sync] = true // nothing an operator can do: stop waiting
					}
				}
			case rn != nil && rn.CreatedAt.After(start) && rn.State == run.Succeeded && rn.Planned.Total() == 0 && rn.Quarantined == 0 &&
				d.quarantined(dst.sync) == 0:
				settled[dst.sync] = true
				env.rec.logf("settle: %s settled with run %s", dst.sync, rn.ID)
			case d.quarantined(dst.sync) > 0:
				out, err := env.cli("sync", "retry", dst.sync)
				env.rec.logf("settle: ebb sync retry %s: %s%s", dst.sync, strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "), errSuffix(err))
			default:
				env.trigger(dst.sync, "settle: ")
			}
		}
		select {
		case <-changed:
		case <-time.After(250 * time.Millisecond):
		}
	}
	for _, dst := range env.dests {
		if !settled[dst.sync] {
			c.add(violation{invariant: invLiveness, detail: fmt.Sprintf("%s did not settle within %s of the chaos's end (a run that succeeds planning nothing, no key quarantined); its runs:\n  %s",
				dst.sync, within, strings.Join(env.rec.runsOf(dst.sync), "\n  "))})
		}
	}
	return len(settled) == len(env.dests)
}

// quarantined counts a sync's quarantined keys (-1 if the admin API does
// not answer).
func (d *driver) quarantined(sync string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := d.env.admin.ListQuarantine(ctx, &adminv1.ListQuarantineRequest{Sync: sync})
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range resp.GetEntries() {
		if e.GetQuarantined() {
			n++
		}
	}
	return n
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
