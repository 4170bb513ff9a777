package activities

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/sendpolicy"
	"github.com/wagate/wagate/shared"
)

// Bounds of one SendRange activity: it returns to the workflow when its frontier has
// moved by a chunk and it has run for at least the Activities' RangeMinTime
// (DefaultRangeMinTime), so that the memo and the carried counters move every few
// seconds; after rangeMaxTime, so that a task that cannot send still reports and its
// history stays bounded; or when what the task waits on changes. Every return costs a
// hand-over (the sends in flight finish before the next activity starts its own), which
// is why a fast task does not return at every chunk: task-status reads the live
// counters of the ledger, only the Web UI's memo waits for the return.
const rangeMaxTime = time.Minute

// softStopMax bounds how long a returning SendRange waits for the recipients that hold
// a governor slot to go out in it before it gives them back.
const softStopMax = 2 * time.Second

// DefaultRangeMinTime is how long a SendRange runs at least before a moved frontier
// makes it return.
const DefaultRangeMinTime = 10 * time.Second

// The template gate's probe spacing: after Meta answers 132015 or 132016 for the
// task's template, one probe goes after templateProbeFirst, then at doubling spacings up
// to templateProbeMax, until Meta takes the template again. Variables for tests.
var (
	templateProbeFirst = 2 * time.Second
	templateProbeMax   = 30 * time.Second
)

// item is one recipient in the dispatcher: ready, in flight, or waiting out a backoff.
type item struct {
	index int
	msg   shared.Message
	att   sendpolicy.Attempts
	at    time.Time // when in backoff: not before
	probe bool      // sent as the template gate's probe
}

// outcome is what one attempt of an item came to.
type outcome struct {
	it      item
	final   bool  // the ledger holds its final outcome
	failed  bool  // and it is a failure
	retry   bool  // parked in the ledger until it.at
	unsent  bool  // given back before its send (the dispatcher is stopping)
	aborted bool  // its send was cut off by the end of the activity; it stays claimed
	paused  bool  // Meta refused its template as paused or disabled; parked, uncharged
	err     error // the attempt must fail (a ledger failure, or a newer attempt took over)
	opened  bool  // its send's answer opened the number's circuit
	// record: the send is over and its final outcome is still to be written; the slot
	// is free, and the write rides with the next send's admission (or goes alone).
	record *pending
	// written: the report of a pending write (final, failed and err say how it went);
	// it frees no slot. alone: it was made on its own, not with a send's admission.
	written, alone bool
	// entry: the outcome this write stored (nil: the ledger held one already).
	entry *redisstore.LedgerEntry
}

// pending is a send's final outcome waiting for its ledger write.
type pending struct {
	it    item
	entry redisstore.LedgerEntry
}

// dispatch is one run of the continuous dispatcher over recipients [start, end) of a
// task: at most workers sends in flight, the next recipient starting as soon as a send
// finishes, recipients in backoff off their slot in a timer heap until their time.
type dispatch struct {
	a       *Activities
	pol     *sendpolicy.Policy
	taskID  string
	owner   int
	workers int
	start   int
	end     int
	media   map[string]string

	// Return bounds; all zero (SendChunk) means run until every recipient is final.
	advance int           // return when the frontier moved this far
	minTime time.Duration // and at least this long has passed
	maxTime time.Duration // return after this long
	waiting *string       // return when what the task waits on differs from this
	// graceful: when the worker stops, return what was reached instead of failing.
	graceful bool
	// halt closes when the task is paused or cancelled: nothing more is claimed, the
	// sends in flight finish, and run returns (halted); nil never.
	halt   <-chan struct{}
	halted bool

	phones map[int]string // the phones of failed recipients seen, for the errors
	// What run saw first hand of each recipient's final outcome (knownSent,
	// knownFailed; 0: only the ledger knows, as when another attempt wrote it), and the
	// failures' entries: counts reads the ledger for the others only.
	known    []byte
	failures map[int]redisstore.LedgerEntry
	// What the task waits on when the run returned ("" nothing), and since when.
	waitKind  string
	waitSince time.Time
	// The Graph API calls this run has in flight, those of them that are the breaker's
	// probes, and whether it makes no more probes (it is returning). A returning run
	// waits for its calls, and one that hangs (Meta hangs instead of failing) would hold
	// every slot back until its deadline, so a run reports a change of what the task
	// waits on only once the calls that could hang it have answered (see waitChanged).
	sending atomic.Int32
	probing atomic.Int32
	noProbe atomic.Bool

	// The template gate: while Meta refuses the task's template as paused (132015) or
	// disabled (132016), nothing is sent but one probe at a time, at tmplProbeAt; no
	// recipient spends an attempt on it. Owned by run's goroutine.
	tmplPaused  bool
	tmplSince   time.Time
	tmplProbeAt time.Time
	tmplSpacing time.Duration
	tmplProbing bool
}

const (
	knownSent   = 's'
	knownFailed = 'f'
)

// learn notes a final outcome seen first hand.
func (d *dispatch) learn(index int, e redisstore.LedgerEntry) {
	switch e.State {
	case redisstore.LedgerSent:
		d.known[index-d.start] = knownSent
	case redisstore.LedgerFailed:
		d.known[index-d.start] = knownFailed
		d.failures[index] = e
	}
}

// waitingNow is what the task waits on now: its template's pause, else the Graph API
// circuit of its number.
func (d *dispatch) waitingNow() (string, time.Time) {
	if d.tmplPaused {
		return shared.WaitTemplatePaused, d.tmplSince
	}
	kind, since := d.pol.Waiting()
	return string(kind), since
}

// pauseTemplate notes Meta's refusal of the template: the gate closes (or, after a
// refused probe, its spacing doubles) and the recipient waits for the next probe.
func (d *dispatch) pauseTemplate(it *item, now time.Time) {
	switch {
	case !d.tmplPaused:
		d.tmplPaused, d.tmplSince, d.tmplSpacing = true, now, templateProbeFirst
	case it.probe:
		d.tmplSpacing = min(2*d.tmplSpacing, templateProbeMax)
	}
	if it.probe || d.tmplProbeAt.Before(now) {
		d.tmplProbeAt = now.Add(d.tmplSpacing)
	}
	if it.probe {
		d.tmplProbing = false
	}
	it.probe = false
	it.at = d.tmplProbeAt
}

// probeAnswered opens the gate again when the probe's answer was not a refusal of the
// template (Meta took the message, or refused it for its recipient): the template is
// active. A probe that got no such answer (an outage, a send given back) goes again.
func (d *dispatch) probeAnswered(o outcome) {
	if !o.it.probe {
		return
	}
	d.tmplProbing = false
	if o.final || o.record != nil {
		d.tmplPaused, d.tmplSince = false, time.Time{}
		return
	}
	d.tmplProbeAt = time.Now().Add(d.tmplSpacing)
}

type page struct {
	offset  int
	msgs    []shared.Message
	entries []redisstore.LedgerEntry
	err     error
}

// pageSize is how many recipients the loader reads at a time.
func pageSize(workers int) int { return min(max(4*workers, 100), 1000) }

// loadPages reads the staged messages and their ledger entries page by page, one page
// ahead of the dispatcher.
func (d *dispatch) loadPages(ctx context.Context) <-chan page {
	ch := make(chan page, 1)
	go func() {
		defer close(ch)
		size := pageSize(d.workers)
		for off := d.start; off < d.end; {
			n := min(size, d.end-off)
			msgs, err := d.a.Store.LoadMessages(ctx, d.taskID, off, n)
			var entries []redisstore.LedgerEntry
			if err == nil && len(msgs) == 0 {
				err = fmt.Errorf("recipient %d is not staged (the task has fewer recipients than %d)", off, d.end)
			}
			if err == nil {
				entries, err = d.a.Store.Ledger(ctx, d.taskID, off, len(msgs))
			}
			select {
			case ch <- page{offset: off, msgs: msgs, entries: entries, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			off += len(msgs)
		}
	}()
	return ch
}

// run dispatches until every recipient of the range is final or a return bound is
// reached, and returns the frontier: every recipient below it is final.
func (d *dispatch) run(ctx context.Context) (int, error) {
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	// sendCtx ends the Graph API calls in flight (the activity ends, or a ledger
	// failure); acquireCtx only stops waiting for the breaker and the governor, so that
	// a returning dispatcher gives its waiting recipients back at once.
	sendCtx, abort := context.WithCancel(ctx)
	defer abort()
	acquireCtx, giveBack := context.WithCancel(sendCtx)
	defer giveBack()

	pages := d.loadPages(loadCtx)
	final := make([]bool, d.end-d.start)
	d.known, d.failures = make([]byte, d.end-d.start), map[int]redisstore.LedgerEntry{}
	// settle marks recipient index final: e, when not nil, is its outcome seen first
	// hand, and a failed one's phone is kept for the errors.
	settle := func(index int, e *redisstore.LedgerEntry, failed bool, phone string) {
		final[index-d.start] = true
		if e != nil {
			d.learn(index, *e)
		}
		if failed {
			d.phones[index] = phone
		}
	}
	frontier := d.start
	var ready []item
	var backoff itemHeap
	inflight := 0 // sends: at most d.workers
	// Final outcomes waiting for their ledger write, and the writes made on their own.
	var unwritten []*pending
	writing := 0
	results := make(chan outcome, d.workers)
	pagesDone := false
	stopping := false
	var failure error
	began := time.Now()
	heartbeat := time.NewTicker(time.Second)
	defer heartbeat.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	workerStop := activity.GetWorkerStopChannel(ctx)
	// A stop ends the dispatch of new recipients. A hard one also gives back the
	// recipients still waiting for their admission; a soft one (the run returns because
	// its frontier moved or its time is up) lets them go in the governor slots they
	// already hold, so that a rate-limited number loses no slots at a hand-over, unless
	// what the task waits on changes or they take longer than softStopMax.
	var gaveBack bool
	var stoppedAt time.Time
	halt := func(err error, soft bool) {
		if failure == nil {
			failure = err
		}
		if !stopping {
			stopping, stoppedAt = true, time.Now()
			d.noProbe.Store(true)
			stopLoad()
		}
		if !soft && !gaveBack {
			gaveBack = true
			giveBack()
		}
	}
	stop := func(err error) { halt(err, false) }
	// A change of what the task waits on (the breaker opened or closed, the template
	// was paused) returns the run, so that the workflow shows it. It is looked at every
	// second, and at once when the run's own send opened the breaker. A run returns for
	// a wait once none of its Graph API calls is in flight (in an outage they answer
	// at once; when Meta hangs they would keep it from returning, and so from probing,
	// until their deadline: it goes on probing instead, and task-status and /api/status
	// show the open circuit meanwhile), and for a resume once its probes have answered.
	waitChanged := func() {
		if d.waiting == nil || gaveBack || time.Since(began) < time.Second {
			return
		}
		kind, since := d.waitingNow()
		calm := d.sending.Load() == 0
		if kind == "" {
			calm = d.probing.Load() == 0
		}
		if kind != *d.waiting && calm {
			d.waitKind, d.waitSince = kind, since
			stop(nil)
		}
	}

	for {
		now := time.Now()
		select {
		case <-d.halt: // a pause or a cancel stops every claim that has not begun
			d.halt, d.halted = nil, true
			stop(nil)
		default:
		}
		// A write made on its own holds its slot, as the send it records did: at most
		// d.workers recipients are sent and not yet recorded at any time.
		for !stopping && inflight+writing < d.workers {
			if d.tmplPaused && (d.tmplProbing || now.Before(d.tmplProbeAt)) {
				break
			}
			var it item
			if backoff.Len() > 0 && !backoff[0].at.After(now) {
				// Recipients whose backoff is over go first: they are the oldest.
				it = heap.Pop(&backoff).(item)
			} else if len(ready) > 0 {
				it, ready = ready[0], ready[1:]
			} else {
				break
			}
			if d.tmplPaused {
				it.probe, d.tmplProbing = true, true
			}
			inflight++
			var prev *pending
			if n := len(unwritten); n > 0 {
				prev, unwritten = unwritten[n-1], unwritten[:n-1]
			}
			go func(it item) { results <- d.attempt(sendCtx, acquireCtx, it, prev, results) }(it)
		}
		// The outcomes no send took along are written on their own at once.
		for _, p := range unwritten {
			writing++
			go func() { results <- d.write(sendCtx, p, nil) }()
		}
		unwritten = unwritten[:0]
		for frontier < d.end && final[frontier-d.start] {
			frontier++
		}
		if frontier == d.end || (stopping && inflight == 0 && writing == 0) {
			break
		}
		if !stopping && d.advance > 0 && frontier-d.start >= d.advance && time.Since(began) >= d.minTime {
			halt(nil, true)
			continue
		}
		if !stopping && d.maxTime > 0 && time.Since(began) >= d.maxTime {
			halt(nil, true)
			continue
		}

		var pageCh <-chan page
		if !stopping && !pagesDone && len(ready) < d.workers {
			pageCh = pages
		}
		var timerC <-chan time.Time
		// While the template gate waits for its probe's answer nothing can start, and the
		// answer wakes the loop.
		if !stopping && inflight+writing < d.workers && !(d.tmplPaused && d.tmplProbing) {
			var wake time.Time
			if backoff.Len() > 0 {
				wake = backoff[0].at
			}
			if d.tmplPaused && !d.tmplProbing && (wake.IsZero() || d.tmplProbeAt.After(wake)) {
				wake = d.tmplProbeAt
			}
			if !wake.IsZero() {
				timer.Reset(time.Until(wake))
				timerC = timer.C
			}
		}
		select {
		case p, ok := <-pageCh:
			if !ok {
				pagesDone = true
				continue
			}
			if p.err != nil {
				stop(fmt.Errorf("load recipients: %w", p.err))
				abort()
				continue
			}
			for i, m := range p.msgs {
				index := p.offset + i
				e := p.entries[i]
				switch {
				case e.State.Final():
					settle(index, &e, e.State == redisstore.LedgerFailed, m.To)
				default:
					it := item{index: index, msg: prepare(m, d.media),
						att: sendpolicy.Attempts{Charged: e.Charged, Paired: e.Paired, Throttled: e.Throttled}}
					if e.State == redisstore.LedgerRetry && e.RetryAt.After(now) {
						it.at = e.RetryAt
						heap.Push(&backoff, it)
					} else {
						ready = append(ready, it)
					}
				}
			}
		case o := <-results:
			if o.written {
				if o.alone {
					writing--
				}
				switch {
				case o.err != nil:
					stop(o.err)
					abort()
				case o.final:
					settle(o.it.index, o.entry, o.failed, o.it.msg.To)
				}
				continue
			}
			inflight--
			if !o.paused {
				d.probeAnswered(o)
			}
			switch {
			case o.record != nil:
				unwritten = append(unwritten, o.record)
			case o.paused:
				d.pauseTemplate(&o.it, time.Now())
				heap.Push(&backoff, o.it)
			case o.err != nil:
				stop(o.err)
				abort()
			case o.final:
				settle(o.it.index, nil, o.failed, o.it.msg.To)
			case o.retry:
				heap.Push(&backoff, o.it)
			case o.unsent, o.aborted:
				// Its ledger entry says where it stands; the next activity resumes it.
			}
			if o.opened {
				waitChanged()
			}
		case <-timerC:
		case <-heartbeat.C:
			activity.RecordHeartbeat(ctx, frontier)
			waitChanged()
			if stopping && !gaveBack && time.Since(stoppedAt) >= softStopMax {
				stop(nil)
			}
		case <-d.halt:
			d.halt, d.halted = nil, true
			stop(nil)
		case <-workerStop:
			workerStop = nil
			if d.graceful {
				stop(nil)
			} else {
				stop(errors.New("worker stopping; the chunk resumes from the send ledger on the next attempt"))
			}
		case <-ctx.Done():
			stop(context.Cause(ctx))
		}
	}
	if d.waiting != nil && d.waitKind == "" && frontier < d.end {
		d.waitKind, d.waitSince = d.waitingNow()
	}
	return frontier, failure
}

// attempt makes one send of a recipient: admission (breaker and governor) and claim,
// with the ledger write of prev, the slot's last send, if it is pending (reported on
// results); the Graph API call and its report; then the recipient's backoff, written to
// the ledger, or its final outcome, handed back to be written (outcome.record).
func (d *dispatch) attempt(sendCtx, acquireCtx context.Context, it item, prev *pending, results chan<- outcome) outcome {
	// The claim rides with the admission, and with them the ledger write of the last
	// send of this slot, if it is pending: one round trip before the Graph API call.
	var rec *redisstore.RecordRequest
	if prev != nil {
		rec = &redisstore.RecordRequest{Index: prev.it.index, Entry: prev.entry}
	}
	pm, claim, err := d.pol.AcquireHolding(acquireCtx, redisstore.HoldRequest{TaskID: d.taskID, Index: it.index,
		Entry: redisstore.LedgerEntry{
			State: redisstore.LedgerClaimed, Attempt: d.owner,
			Charged: it.att.Charged, Paired: it.att.Paired, Throttled: it.att.Throttled,
		}, Record: rec})
	if prev != nil {
		results <- d.write(sendCtx, prev, rec)
	}
	switch {
	case err != nil:
		if acquireCtx.Err() != nil {
			// Given back before its send. A claim it made is turned back into a retry due
			// now, with the recipient's attempt counts: nothing was sent, and a paused or
			// cancelled task must not show it as in flight. Should that write fail, the
			// claim stays: it only says that the recipient may have been sent, and the
			// next activity takes it over.
			if claim == redisstore.ClaimGo {
				if o := d.park(sendCtx, it, time.Now(), outcome{it: it, unsent: true}); o.err == nil {
					return o
				}
			}
			return outcome{it: it, unsent: true}
		}
		return outcome{it: it, err: fmt.Errorf("send admission of recipient %d: %w", it.index, err)}
	case claim == redisstore.ClaimDone:
		return outcome{it: it, final: true}
	case claim == redisstore.ClaimLost:
		return outcome{it: it, err: errSuperseded}
	}
	if pm.Probe {
		if d.noProbe.Load() {
			// The run is returning: the next one probes, as soon as it starts.
			pm.Abandon()
			return d.park(sendCtx, it, time.Now(), outcome{it: it, unsent: true})
		}
		d.probing.Add(1)
		defer d.probing.Add(-1)
	}
	d.sending.Add(1)
	res, serr := d.a.Graph.Send(sendCtx, it.msg, fmt.Sprintf("%s:%d", d.taskID, it.index))
	d.sending.Add(-1)
	if serr != nil && sendCtx.Err() != nil {
		pm.Abandon()
		return outcome{it: it, aborted: true}
	}
	o := pm.Done(sendCtx, serr)
	out := d.answered(sendCtx, it, res, serr, o)
	out.opened = o.Opened
	return out
}

// answered is what becomes of a recipient after Meta's answer to its send (res, serr),
// which the policy took as o: parked for its template, final (to be written), or parked
// until its next attempt.
func (d *dispatch) answered(sendCtx context.Context, it item, res graphapi.SendResult, serr error, o sendpolicy.Outcome) outcome {
	if serr != nil && it.msg.Kind == shared.KindTemplate && graphapi.TemplatePaused(serr) {
		// Not the recipient's failure: the campaign waits for its template.
		return d.park(sendCtx, it, time.Now().Add(templateProbeFirst), outcome{it: it, paused: true})
	}
	step := d.pol.Next(&it.att, o)

	if step.Final {
		entry := redisstore.LedgerEntry{State: redisstore.LedgerSent}
		if serr == nil {
			entry.WAMID = res.WAMID
		} else {
			entry = failed(serr)
		}
		entry.Phone = it.msg.To // for delivery tracking
		return outcome{it: it, record: &pending{it: it, entry: entry}}
	}
	it.at = time.Now().Add(step.Delay)
	return d.park(sendCtx, it, it.at, outcome{it: it, retry: true})
}

// write reports the ledger write of a pending final outcome: made already by rec (the
// round trip of a send's admission), or made now, on its own. The write must land
// even when the activity is being cancelled: the send already happened.
func (d *dispatch) write(ctx context.Context, p *pending, rec *redisstore.RecordRequest) outcome {
	o := outcome{it: p.it, written: true, alone: rec == nil, final: true, failed: p.entry.State == redisstore.LedgerFailed}
	wrote := false
	if rec != nil && rec.Done && rec.Err == nil {
		wrote = rec.Wrote
	} else {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var err error
		if wrote, err = d.a.Store.Record(ctx, d.taskID, p.it.index, p.entry); err != nil {
			return outcome{it: p.it, written: true, alone: o.alone, err: fmt.Errorf("record recipient %d: %w", p.it.index, err)}
		}
	}
	if wrote {
		o.entry = &p.entry
	}
	return o
}

// park writes a recipient's backoff until at to the ledger, with its attempt counts,
// and answers parked, or what the ledger says instead. ctx must outlive a cancelled
// activity: the send already happened.
func (d *dispatch) park(ctx context.Context, it item, at time.Time, parked outcome) outcome {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	park, err := d.a.Store.Hold(ctx, d.taskID, it.index, redisstore.LedgerEntry{
		State: redisstore.LedgerRetry, Attempt: d.owner, RetryAt: at,
		Charged: it.att.Charged, Paired: it.att.Paired, Throttled: it.att.Throttled,
	})
	switch {
	case err != nil:
		return outcome{it: it, err: fmt.Errorf("park recipient %d: %w", it.index, err)}
	case park == redisstore.ClaimLost:
		return outcome{it: it, err: errSuperseded}
	case park == redisstore.ClaimDone:
		return outcome{it: it, final: true}
	}
	return parked
}

// itemHeap orders recipients in backoff by the time they may go again.
type itemHeap []item

func (h itemHeap) Len() int           { return len(h) }
func (h itemHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h itemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)        { *h = append(*h, x.(item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// counts sums the outcomes of recipients [from, to) and names the first failures: from
// what run saw first hand, and from the ledger, which holds those written by earlier
// activities too, for the others.
func (d *dispatch) counts(ctx context.Context, from, to int) (sent, failedN int, errs []shared.RecipientError, err error) {
	read := map[int]redisstore.LedgerEntry{}
	for i := from; i < to; {
		if d.known[i-d.start] != 0 {
			i++
			continue
		}
		j := i + 1
		for j < to && d.known[j-d.start] == 0 {
			j++
		}
		entries, err := d.a.Store.Ledger(ctx, d.taskID, i, j-i)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("read send ledger: %w", err)
		}
		for k, e := range entries {
			read[i+k] = e
		}
		i = j
	}
	for index := from; index < to; index++ {
		var e redisstore.LedgerEntry
		switch {
		case d.known[index-d.start] == knownSent:
			e.State = redisstore.LedgerSent
		case d.known[index-d.start] == knownFailed:
			e = d.failures[index]
		default:
			e = read[index]
		}
		switch e.State {
		case redisstore.LedgerSent:
			sent++
		case redisstore.LedgerFailed:
			failedN++
			if len(errs) < shared.MaxTaskErrors {
				ph, ok := d.phones[index]
				if !ok {
					if m, err := d.a.Store.LoadMessages(ctx, d.taskID, index, 1); err == nil && len(m) == 1 {
						ph = m[0].To
					}
				}
				errs = append(errs, shared.RecipientError{Index: index, Phone: ph, Error: e.Error, Code: e.Code})
			}
		default:
			return 0, 0, nil, fmt.Errorf("recipient %d has no outcome below the frontier %d", index, to)
		}
	}
	return sent, failedN, errs, nil
}

// owner is the ledger owner of an attempt of the seq-th SendRange of a task (SendChunk
// owns by its attempt alone, below every SendRange): later
// activities own more than earlier ones, and a retry more than the attempt it replaces.
func owner(seq int, attempt int32) int { return (seq+1)<<20 + int(attempt) }

// SendRange sends recipients from in.Offset on toward in.End continuously: at most
// MaxWorkers sends in flight, the next recipient starting as soon as a send finishes,
// across what used to be chunk boundaries; a recipient in backoff gives its slot up
// and comes back when its time is up. Every outcome and every backoff is written to the
// send ledger, so the next activity, or a retry after a crash, resumes each recipient
// exactly. It returns when the frontier (below which every recipient is final) has
// moved by a chunk, after a minute, when what the task waits on changes (the Graph API
// circuit of its number opened or closed), when the worker stops, or at the end.
func (a *Activities) SendRange(ctx context.Context, in shared.RangeInput) (shared.RangeResult, error) {
	if in.Offset < 0 || in.End < in.Offset || in.MaxWorkers < 1 {
		return shared.RangeResult{}, fmt.Errorf("bad range %d-%d with %d workers", in.Offset, in.End, in.MaxWorkers)
	}
	waiting := in.Waiting
	d := &dispatch{
		a: a, pol: a.SendPolicy, taskID: in.TaskID, owner: owner(in.Seq, activity.GetInfo(ctx).Attempt),
		workers: in.MaxWorkers, start: in.Offset, end: in.End, media: mediaIDs(in.Media),
		advance: shared.ChunkSize(in.MaxWorkers), minTime: a.rangeMinTime(), maxTime: rangeMaxTime,
		waiting: &waiting, graceful: true,
		phones: map[int]string{},
	}
	if in.Waiting == shared.WaitTemplatePaused {
		// The last activity left the template paused: probe at once, then as before.
		d.tmplPaused, d.tmplProbeAt, d.tmplSpacing, d.tmplSince = true, time.Now(), templateProbeFirst, time.Now()
		if in.WaitingSince != nil {
			d.tmplSince = *in.WaitingSince
		}
	}
	if in.Control {
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		d.halt = a.watchControl(watchCtx, in.TaskID)
	}
	frontier, err := d.run(ctx)
	if err != nil {
		return shared.RangeResult{}, err
	}
	sent, failedN, errs, err := d.counts(ctx, in.Offset, frontier)
	if err != nil {
		return shared.RangeResult{}, err
	}
	res := shared.RangeResult{Frontier: frontier, Sent: sent, Failed: failedN, Errors: errs, Waiting: d.waitKind, Halted: d.halted}
	// Delivery counts for the Web UI memo; the workflow cannot read Redis itself.
	if dc, err := a.Store.Delivery(ctx, in.TaskID); err == nil {
		res.Delivered, res.Read = dc.Delivered, dc.Read
	}
	if d.waitKind != "" {
		t := d.waitSince.UTC().Truncate(time.Second)
		res.WaitingSince = &t
	}
	return res, nil
}

func mediaIDs(refs []shared.MediaRef) map[string]string {
	media := make(map[string]string, len(refs))
	for _, m := range refs {
		if m.MediaID != "" {
			media[m.Link] = m.MediaID
		}
	}
	return media
}
