package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLedgerClaimRecordSemantics(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task = "led"
	sent := LedgerEntry{State: LedgerSent, WAMID: "wamid.HBgMNTczMTU2MjY5Mjg1FQIAERgSQzVGNUY4RDYwMzU3MTNFQjQ0AA=="}
	failed := LedgerEntry{State: LedgerFailed, Code: 131026, Error: "Message undeliverable | número sin WhatsApp"}

	type step struct {
		op         string // claim | record
		index      int
		entry      LedgerEntry
		wantWrote  bool
		wantState  []LedgerEntry // Ledger(0, 3) after the step
		wantSent   int
		wantFailed int
	}
	none := LedgerEntry{}
	claimed := LedgerEntry{State: LedgerClaimed, Attempt: 1}
	steps := []step{
		{op: "claim", index: 0, wantState: []LedgerEntry{claimed, none, none}},
		{op: "claim", index: 0, wantState: []LedgerEntry{claimed, none, none}},
		{op: "record", index: 0, entry: sent, wantWrote: true, wantState: []LedgerEntry{sent, none, none}, wantSent: 1},
		{op: "record", index: 0, entry: sent, wantWrote: false, wantState: []LedgerEntry{sent, none, none}, wantSent: 1},
		{op: "record", index: 0, entry: failed, wantWrote: false, wantState: []LedgerEntry{sent, none, none}, wantSent: 1},
		{op: "claim", index: 0, wantState: []LedgerEntry{sent, none, none}, wantSent: 1},
		{op: "record", index: 2, entry: failed, wantWrote: true, wantState: []LedgerEntry{sent, none, failed}, wantSent: 1, wantFailed: 1},
		{op: "claim", index: 2, wantState: []LedgerEntry{sent, none, failed}, wantSent: 1, wantFailed: 1},
		{op: "claim", index: 1, wantState: []LedgerEntry{sent, claimed, failed}, wantSent: 1, wantFailed: 1},
		{op: "record", index: 1, entry: sent, wantWrote: true, wantState: []LedgerEntry{sent, sent, failed}, wantSent: 2, wantFailed: 1},
	}
	for i, st := range steps {
		switch st.op {
		case "claim":
			if _, err := s.Claim(ctx, task, st.index, 1); err != nil {
				t.Fatalf("step %d: Claim(%d): %v", i, st.index, err)
			}
		case "record":
			wrote, err := s.Record(ctx, task, st.index, st.entry)
			if err != nil {
				t.Fatalf("step %d: Record(%d): %v", i, st.index, err)
			}
			if wrote != st.wantWrote {
				t.Errorf("step %d: Record(%d, %c) = %v, want %v", i, st.index, st.entry.State, wrote, st.wantWrote)
			}
		}
		got, err := s.Ledger(ctx, task, 0, 3)
		if err != nil {
			t.Fatalf("step %d: Ledger: %v", i, err)
		}
		for j := range got {
			if got[j] != st.wantState[j] {
				t.Errorf("step %d (%s %d): entry %d = %+v, want %+v", i, st.op, st.index, j, got[j], st.wantState[j])
			}
		}
		s1, f1, err := s.Progress(ctx, task)
		if err != nil || s1 != st.wantSent || f1 != st.wantFailed {
			t.Errorf("step %d: Progress = %d, %d, %v; want %d, %d", i, s1, f1, err, st.wantSent, st.wantFailed)
		}
	}
}

func TestLedgerRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	tests := []struct {
		name string
		call func() error
	}{
		{"record a claim", func() error {
			_, err := s.Record(ctx, "t", 0, LedgerEntry{State: LedgerClaimed})
			return err
		}},
		{"record nothing", func() error { _, err := s.Record(ctx, "t", 0, LedgerEntry{}); return err }},
		{"claim a negative index", func() error { _, err := s.Claim(ctx, "t", -1, 1); return err }},
		{"read a negative range", func() error { _, err := s.Ledger(ctx, "t", 0, -1); return err }},
	}
	for _, tt := range tests {
		if err := tt.call(); err == nil {
			t.Errorf("%s: err = nil, want one", tt.name)
		}
	}
	if sent, failed, _ := s.Progress(ctx, "t"); sent != 0 || failed != 0 {
		t.Errorf("Progress after rejected calls = %d, %d; want 0, 0", sent, failed)
	}
}

func TestLedgerRangeAcrossBuckets(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task = "r"
	want := map[int]LedgerEntry{}
	for i := 90; i < 320; i += 7 {
		e := LedgerEntry{State: LedgerSent, WAMID: fmt.Sprintf("wamid.%d", i)}
		if i%3 == 0 {
			e = LedgerEntry{State: LedgerFailed, Code: 100 + i, Error: fmt.Sprintf("err %d", i)}
		}
		if _, err := s.Record(ctx, task, i, e); err != nil {
			t.Fatal(err)
		}
		want[i] = e
	}
	if _, err := s.Claim(ctx, task, 201, 1); err != nil {
		t.Fatal(err)
	}
	want[201] = LedgerEntry{State: LedgerClaimed, Attempt: 1}

	tests := []struct{ offset, count int }{{0, 0}, {85, 200}, {99, 2}, {200, 100}, {0, 1000}, {5000, 3}}
	for _, tt := range tests {
		got, err := s.Ledger(ctx, task, tt.offset, tt.count)
		if err != nil {
			t.Fatalf("Ledger(%d, %d): %v", tt.offset, tt.count, err)
		}
		if len(got) != tt.count {
			t.Fatalf("Ledger(%d, %d) returned %d entries, want %d", tt.offset, tt.count, len(got), tt.count)
		}
		for j, e := range got {
			if w := want[tt.offset+j]; e != w {
				t.Errorf("Ledger(%d, %d)[%d] (recipient %d) = %+v, want %+v", tt.offset, tt.count, j, tt.offset+j, e, w)
			}
		}
	}
}

func TestRecordConcurrentCountsOnce(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task, index, n = "race", 7, 20
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
		start   = make(chan struct{})
	)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wamid := fmt.Sprintf("wamid.%d", g)
			<-start
			wrote, err := s.Record(ctx, task, index, LedgerEntry{State: LedgerSent, WAMID: wamid})
			if err != nil {
				t.Errorf("Record from goroutine %d: %v", g, err)
				return
			}
			if wrote {
				mu.Lock()
				winners = append(winners, wamid)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent Records reported writing (%v), want exactly 1", len(winners), n, winners)
	}
	if sent, failed, err := s.Progress(ctx, task); err != nil || sent != 1 || failed != 0 {
		t.Errorf("Progress = %d, %d, %v; want 1, 0", sent, failed, err)
	}
	got, err := s.Ledger(ctx, task, index, 1)
	if err != nil || got[0].WAMID != winners[0] {
		t.Errorf("Ledger entry = %+v, %v; want the winner's %s", got, err, winners[0])
	}
}

func TestLedgerIsCompact(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task, n = "mem", 1000
	wamid := "wamid.HBgMNTczMTU2MjY5Mjg1FQIAERgSQzVGNUY4RDYwMzU3MTNFQjQ0AA=="
	for i := range n {
		if _, err := s.Record(ctx, task, i, LedgerEntry{State: LedgerSent, WAMID: wamid}); err != nil {
			t.Fatal(err)
		}
	}
	var bytes int64
	for b := range n / ledgerBucket {
		k := s.ledgerKey(task, b)
		if enc := s.rdb.ObjectEncoding(ctx, k).Val(); enc != "listpack" {
			t.Errorf("OBJECT ENCODING %s = %q, want listpack", k, enc)
		}
		bytes += s.rdb.MemoryUsage(ctx, k).Val()
	}
	// 100k recipients at this size must stay a few MB: allow 90 bytes per entry of
	// which the value alone is 64.
	if per := bytes / n; per > 90 {
		t.Errorf("ledger costs %d bytes per recipient (%d for %d), want <= 90 (~9 MB per 100k)", per, bytes, n)
	}
}

func TestLedgerEntryEncoding(t *testing.T) {
	tests := []LedgerEntry{
		{State: LedgerClaimed},
		{State: LedgerSent, WAMID: "wamid.abc=="},
		{State: LedgerSent},
		{State: LedgerFailed, Code: 131026, Error: "a|b|c"},
		{State: LedgerFailed, Error: ""},
	}
	for _, e := range tests {
		v := encodeEntry(e)
		got, err := decodeEntry(v)
		if err != nil || got != e {
			t.Errorf("decodeEntry(encodeEntry(%+v) = %q) = %+v, %v; want the entry back", e, v, got, err)
		}
	}
	for _, bad := range []string{"", "x", "s", "f|", "f|abc|x", "f|12"} {
		if _, err := decodeEntry(bad); err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("decodeEntry(%q) err = %v, want malformed", bad, err)
		}
	}
}

func TestLedgerTTLFollowsStaging(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	tests := []struct {
		name     string
		stageTTL time.Duration // 0 = nothing staged
		min, max time.Duration
	}{
		{"staged", 2 * time.Hour, 119 * time.Minute, 2 * time.Hour},
		{"nothing staged", 0, defaultTaskTTL - time.Minute, defaultTaskTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := strings.ReplaceAll(tt.name, " ", "-")
			if tt.stageTTL > 0 {
				if err := s.StageMessages(ctx, task, testMessages(2), tt.stageTTL); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Claim(ctx, task, 0, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Record(ctx, task, 1, LedgerEntry{State: LedgerSent}); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{s.ledgerKey(task, 0), s.progressKey(task)} {
				if ttl := s.rdb.PTTL(ctx, k).Val(); ttl < tt.min || ttl > tt.max {
					t.Errorf("PTTL(%s) = %v, want in [%v, %v]", k, ttl, tt.min, tt.max)
				}
			}
		})
	}
}

func TestClaimAcrossAttempts(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task = "attempts"
	steps := []struct {
		index, attempt int
		want           ClaimResult
		wantEntry      LedgerEntry
	}{
		{0, 1, ClaimGo, LedgerEntry{State: LedgerClaimed, Attempt: 1}},
		{0, 1, ClaimGo, LedgerEntry{State: LedgerClaimed, Attempt: 1}},
		// Attempt 2 replaces attempt 1, whose worker died with the send in flight.
		{0, 2, ClaimGo, LedgerEntry{State: LedgerClaimed, Attempt: 2}},
		// Attempt 1 is stale: it must not take the recipient back.
		{0, 1, ClaimLost, LedgerEntry{State: LedgerClaimed, Attempt: 2}},
		{1, 3, ClaimGo, LedgerEntry{State: LedgerClaimed, Attempt: 3}},
	}
	for i, st := range steps {
		got, err := s.Claim(ctx, task, st.index, st.attempt)
		if err != nil || got != st.want {
			t.Fatalf("step %d: Claim(%d, attempt %d) = %v, %v; want %v", i, st.index, st.attempt, got, err, st.want)
		}
		e, err := s.Ledger(ctx, task, st.index, 1)
		if err != nil || e[0] != st.wantEntry {
			t.Errorf("step %d: entry = %+v (%v), want %+v", i, e, err, st.wantEntry)
		}
	}
	if _, err := s.Record(ctx, task, 0, LedgerEntry{State: LedgerSent, WAMID: "wamid.A"}); err != nil {
		t.Fatal(err)
	}
	for _, attempt := range []int{1, 2, 9} {
		if got, err := s.Claim(ctx, task, 0, attempt); err != nil || got != ClaimDone {
			t.Errorf("Claim of a sent recipient by attempt %d = %v, %v; want ClaimDone", attempt, got, err)
		}
	}
}

// A write over a claim keeps every key it creates or touches under a TTL: the ledger
// bucket and counters (made by the claim) and the delivery records (made by the write).
func TestRecordOverAClaimKeepsEveryTTL(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task = "ttl-over-claim"
	if err := s.StageMessages(ctx, task, testMessages(3), 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := s.Claim(ctx, task, i, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Record(ctx, task, 0, LedgerEntry{State: LedgerSent, WAMID: "wamid.ttl0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, task, 1, LedgerEntry{State: LedgerFailed, Code: 131026, Error: "(#131026) Message undeliverable"}); err != nil {
		t.Fatal(err)
	}
	// Not claimed first (a chunk of the older workflow code writes this way).
	if _, err := s.Record(ctx, task, 2, LedgerEntry{State: LedgerSent, WAMID: "wamid.ttl2"}); err != nil {
		t.Fatal(err)
	}
	num := s.rdb.HGet(ctx, s.dlMetaKey(task), "num").Val()
	keys := []string{s.ledgerKey(task, 0), s.progressKey(task), s.dlMetaKey(task), s.dlBucketKey(task, 0),
		s.dlErrKey(task), s.key("dl", "n", num)}
	for _, k := range keys {
		if ttl := s.rdb.PTTL(ctx, k).Val(); ttl < 119*time.Minute || ttl > 2*time.Hour {
			t.Errorf("PTTL(%s) = %v, want the staged messages' 2h", k, ttl)
		}
	}
}
