package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
)

// The checker of the history test. After the chaos has settled it holds
// each destination to two invariants:
//
//   - final state: the destination holds exactly the model's current rows;
//   - per-key order: each key received its values in the order the model
//     took them, across runs. Every change of the model draws a new version
//     from one sequence, so per key, in arrival order, an upsert never
//     carries an older version than one received before, nor data the
//     model never had at that version; and a delete arrives only if the
//     model deleted the key after the last value the key received (a
//     delete followed by a re-add with a higher version is fine, an old
//     delete or an old upsert arriving late is not). Duplicates (the same
//     value again) are allowed.
//
// Each violation names the invariant, the destination and the key, and
// shows the key's model history and everything it received (op, version,
// run and that run's path through its states, batch, time).

// Invariant names, as failure messages print them.
const (
	invFinalState = "final state: the destination holds exactly the model's rows"
	invOrder      = "per-key order: no key receives a value older than one it already received"
	invCoverage   = "coverage: kills land in every phase (diffing, extracting, delivering, committing)"
	invLiveness   = "liveness: every run ends, and the syncs settle once the chaos stops"
	invNoCrash    = "no crash: no service exits on its own"
	invRunErrors  = "transient errors are retried: a run fails only because records failed, never because a process, NATS or Postgres restarted"
)

// violation is one broken invariant.
type violation struct {
	invariant string
	dest, key string // when it concerns one key at one destination
	detail    string
}

// destination is what the checker reads of one destination.
type checkedDest struct {
	name, sync string
	hook       *capture.Server
}

// checker holds what the checks need; check fills violations.
type checker struct {
	rec        *recorder
	model      map[string]map[string]any // key -> current row
	history    map[string][]modelEvent   // key -> changes in commit order
	violations []violation
}

func (c *checker) add(v violation) { c.violations = append(c.violations, v) }

// checkDestination runs both per-key invariants on one destination.
func (c *checker) checkDestination(d checkedDest) {
	byKey := map[string][]capture.Record{}
	for _, rec := range d.hook.Records() {
		if rec.Sync != d.sync {
			continue
		}
		k := capture.KeyString(rec.Key)
		byKey[k] = append(byKey[k], rec)
	}
	for k, got := range byKey {
		if problem := orderProblem(c.history[k], got); problem != "" {
			c.add(violation{invariant: invOrder, dest: d.name, key: k, detail: problem + "\n" + c.describe(k, got)})
		}
	}
	state := d.hook.State()
	keys := map[string]bool{}
	for k := range state {
		keys[k] = true
	}
	for k := range c.model {
		keys[k] = true
	}
	for k := range keys {
		have, ok := state[k]
		want, exists := c.model[k]
		var problem string
		switch {
		case ok && exists && reflect.DeepEqual(have, want):
			continue
		case !ok:
			problem = fmt.Sprintf("missing: the model has v%s, the destination does not have the key", want["version"])
		case !exists:
			problem = fmt.Sprintf("extra: the destination holds v%s, the model deleted the key", have["version"])
		case have["version"] != want["version"]:
			problem = fmt.Sprintf("stale: the destination holds v%s, the model has v%s", have["version"], want["version"])
		default:
			problem = fmt.Sprintf("different data at v%s: the destination holds %v, the model has %v", want["version"], have, want)
		}
		c.add(violation{invariant: invFinalState, dest: d.name, key: k, detail: problem + "\n" + c.describe(k, byKey[k])})
	}
}

// checkRuns holds every run the recorder saw to invRunErrors: a run
// that failed must have failed for its records (the destinations' faults);
// the kills and restarts the test makes are all transient.
func (c *checker) checkRuns() {
	c.rec.mu.Lock()
	var bad []*runTrace
	for _, rt := range c.rec.runs {
		if rt.last.State == run.Failed && !strings.Contains(rt.last.Error, "records failed") {
			bad = append(bad, rt)
		}
	}
	c.rec.mu.Unlock()
	sort.Slice(bad, func(i, j int) bool { return bad[i].id < bad[j].id })
	for _, rt := range bad {
		c.add(violation{invariant: invRunErrors, detail: fmt.Sprintf("run %s of %s failed with %q; its path: %s; around then:\n%s",
			rt.id, rt.sync, rt.last.Error, rt.String(), c.rec.actionsAround(rt.states[0].at, rt.states[len(rt.states)-1].at))})
	}
}

// orderProblem checks one key's arrivals against its model history and
// returns what is wrong, or "".
func orderProblem(hist []modelEvent, got []capture.Record) string {
	pos := -1 // the model change the destination is at
	for i, rec := range got {
		n := i + 1
		if rec.Op == record.OpDelete {
			q := -1
			for j := max(pos, 0); j < len(hist); j++ {
				if hist[j].op == "delete" && (j > pos || hist[pos].op == "delete") {
					q = j
					break
				}
			}
			if q < 0 {
				if pos < 0 {
					return fmt.Sprintf("arrival #%d is a delete, but the model never deleted the key", n)
				}
				return fmt.Sprintf("arrival #%d is a delete, but the model did not delete the key after %s, which it had already received (a stale delete)",
					n, hist[pos])
			}
			pos = q
			continue
		}
		v, err := versionOf(rec.Data)
		if err != nil {
			return fmt.Sprintf("arrival #%d (%s): %v", n, rec.Op, err)
		}
		p := slices.IndexFunc(hist, func(e modelEvent) bool { return e.op != "delete" && e.version == v })
		switch {
		case p < 0:
			return fmt.Sprintf("arrival #%d carries v%d, a version the key never had", n, v)
		case !reflect.DeepEqual(hist[p].row, rec.Data):
			return fmt.Sprintf("arrival #%d carries v%d with data %v, but the model's row at v%d was %v", n, v, rec.Data, v, hist[p].row)
		case p < pos:
			return fmt.Sprintf("arrival #%d carries v%d (model change %d of the key) after the key already received %s (change %d): an older value after a newer one",
				n, v, p+1, hist[pos], pos+1)
		}
		pos = p
	}
	return ""
}

func versionOf(data map[string]any) (int64, error) {
	num, ok := data["version"].(json.Number)
	if !ok {
		return 0, fmt.Errorf("no version in %v", data)
	}
	return num.Int64()
}

// describe is a key's model history and arrivals, for a failure message.
func (c *checker) describe(key string, got []capture.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  model history of %s:", key)
	for i, e := range c.history[key] {
		fmt.Fprintf(&b, " %d) %s at %s;", i+1, e, c.rec.since(e.at))
	}
	if len(c.history[key]) == 0 {
		b.WriteString(" (no change logged)")
	}
	fmt.Fprintf(&b, "\n  received by the destination, in arrival order (%d):", len(got))
	if len(got) == 0 {
		b.WriteString(" nothing")
	}
	const shown = 40
	from := max(len(got)-shown, 0)
	if from > 0 {
		fmt.Fprintf(&b, "\n    ... %d earlier arrivals left out", from)
	}
	runs := map[string]bool{}
	for i := from; i < len(got); i++ {
		rec := got[i]
		what := string(rec.Op)
		if rec.Op != record.OpDelete {
			v, _ := versionOf(rec.Data)
			what = fmt.Sprintf("%s v%d", rec.Op, v)
		}
		fmt.Fprintf(&b, "\n    #%d %-12s run %s batch %s at %s", i+1, what, rec.RunID, rec.BatchID, c.rec.since(rec.ReceivedAt))
		runs[rec.RunID] = true
	}
	ids := make([]string, 0, len(runs))
	for id := range runs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "\n  run %s: %s", id, c.rec.trace(id))
	}
	return b.String()
}

// report fails t with every violation, grouped by invariant, the first
// few of each in full.
func (c *checker) report(t *testing.T, replay string) {
	t.Helper()
	if len(c.violations) == 0 {
		return
	}
	byInv := map[string][]violation{}
	var order []string
	for _, v := range c.violations {
		if byInv[v.invariant] == nil {
			order = append(order, v.invariant)
		}
		byInv[v.invariant] = append(byInv[v.invariant], v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d invariant violations (%s):", len(c.violations), replay)
	for _, inv := range order {
		vs := byInv[inv]
		sort.Slice(vs, func(i, j int) bool { return vs[i].dest+vs[i].key < vs[j].dest+vs[j].key })
		fmt.Fprintf(&b, "\n\nINVARIANT BROKEN: %s — %d violations", inv, len(vs))
		const full = 5
		for i, v := range vs {
			if i == full {
				var rest []string
				for _, v := range vs[full:] {
					rest = append(rest, v.dest+" "+v.key)
				}
				if len(rest) > 50 {
					rest = append(rest[:50], fmt.Sprintf("and %d more", len(rest)-50))
				}
				fmt.Fprintf(&b, "\n  also: %s", strings.Join(rest, ", "))
				break
			}
			if v.key != "" {
				fmt.Fprintf(&b, "\n- destination %s, key %s: %s", v.dest, v.key, v.detail)
			} else {
				fmt.Fprintf(&b, "\n- %s", v.detail)
			}
		}
	}
	t.Error(b.String())
}

// since formats a time relative to the start of the test.
func (r *recorder) since(at time.Time) string {
	return fmt.Sprintf("+%.3fs", at.Sub(r.start).Seconds())
}
