package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wagate/wagate/shared"
)

// wamidOf is a wamid shaped like Meta's (valid base64, so that the compact form is
// exercised) for recipient i of a test.
func wamidOf(i int) string { return MetaLikeWAMID(fmt.Sprintf("5731%08d", i), uint64(i)) }

func status(task string, i int, st string, ts int64, opaque bool) shared.DeliveryStatus {
	d := shared.DeliveryStatus{ID: wamidOf(i), Status: st, Timestamp: strconv.FormatInt(ts, 10), RecipientID: fmt.Sprintf("5731%08d", i)}
	if opaque {
		d.BizOpaqueCallbackData = fmt.Sprintf("%s:%d", task, i)
	}
	if st == shared.DeliveryFailed {
		d.Errors = json.RawMessage(`[{"code":131049,"title":"This message was not delivered to maintain healthy ecosystem engagement.","message":"x","error_data":{"details":"x"}}]`)
	}
	return d
}

func sentEntry(i int) LedgerEntry {
	return LedgerEntry{State: LedgerSent, WAMID: wamidOf(i), Phone: fmt.Sprintf("5731%08d", i)}
}

func applyAll(t *testing.T, s *Store, sts ...shared.DeliveryStatus) []StatusOutcome {
	t.Helper()
	out, err := s.ApplyStatuses(context.Background(), sts)
	if err != nil {
		t.Fatalf("ApplyStatuses: %v", err)
	}
	return out
}

func counts(t *testing.T, s *Store, task string) DeliveryCounts {
	t.Helper()
	c, err := s.Delivery(context.Background(), task)
	if err != nil {
		t.Fatalf("Delivery: %v", err)
	}
	return c
}

func row(t *testing.T, s *Store, task string, i int) RecipientRow {
	t.Helper()
	titles, err := s.ErrorTitles(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.Recipients(context.Background(), task, i, 1, titles)
	if err != nil || len(rows) != 1 {
		t.Fatalf("Recipients(%d) = %v, %v", i, rows, err)
	}
	return rows[0]
}

// Statuses out of order, repeated and late move a recipient forward only, each counted
// once; times are kept as first seen.
func TestDeliveryMonotonicOutOfOrderRepeats(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task = "mono"
	for i := range 3 {
		if _, err := s.Record(ctx, task, i, sentEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	base := int64(1_760_000_000)
	// 0: read before delivered, then delivered, sent and read again.
	// 1: delivered twice. 2: sent only.
	got := applyAll(t, s,
		status(task, 0, "read", base+30, true),
		status(task, 0, "delivered", base+20, true),
		status(task, 0, "sent", base+10, true),
		status(task, 0, "read", base+31, true),
		status(task, 1, "delivered", base+5, true),
		status(task, 1, "delivered", base+6, true),
		status(task, 2, "sent", base+1, true),
	)
	// A late sent finds its time taken by the ledger's acceptance: nothing moves.
	want := []StatusOutcome{StatusCounted, StatusCounted, StatusTracked, StatusTracked, StatusCounted, StatusTracked, StatusCounted}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("status %d: outcome %d, want %d", i, got[i], want[i])
		}
	}
	if c := counts(t, s, task); c != (DeliveryCounts{Delivered: 2, Read: 1}) {
		t.Errorf("counts = %+v, want delivered 2 read 1", c)
	}
	r := row(t, s, task, 0)
	if r.Status != RecipientRead || r.WAMID != wamidOf(0) || r.Phone != "573100000000" {
		t.Errorf("row 0 = %+v", r)
	}
	if r.DeliveredAt == nil || r.DeliveredAt.Unix() != base+20 || r.ReadAt.Unix() != base+30 {
		t.Errorf("row 0 times = delivered %v read %v, want first seen", r.DeliveredAt, r.ReadAt)
	}
	if r := row(t, s, task, 2); r.Status != RecipientSent || r.SentAt == nil {
		t.Errorf("row 2 = %+v, want sent with a time", r)
	}
}

// A status that arrives before the ledger writes its wamid is kept and counted when the
// write lands, with or without the task's opaque data; later statuses without opaque
// data find the recipient through the reverse index.
func TestDeliveryRaceBeforeLedgerWrite(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task = "race"
	base := int64(1_760_000_000)
	// The task already has a recorded recipient (its tracking exists): 1 and 2 race.
	if _, err := s.Record(ctx, task, 0, sentEntry(0)); err != nil {
		t.Fatal(err)
	}
	applyAll(t, s, status(task, 1, "delivered", base, true), status(task, 2, "read", base, false))
	if c := counts(t, s, task); c != (DeliveryCounts{}) {
		t.Errorf("counts before the ledger write = %+v, want zeros (not sent yet)", c)
	}
	if r := row(t, s, task, 1); r.Status != RecipientDelivered || r.WAMID != wamidOf(1) {
		t.Errorf("row 1 before its ledger write = %+v, want delivered from the status", r)
	}
	for i := 1; i <= 2; i++ {
		if _, err := s.Record(ctx, task, i, sentEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if c := counts(t, s, task); c != (DeliveryCounts{Delivered: 2, Read: 1}) {
		t.Errorf("counts after the ledger writes = %+v, want delivered 2 read 1", c)
	}
	if n, _ := s.rdb.Exists(ctx, s.statusKey(wamidOf(2))).Result(); n != 0 {
		t.Errorf("status:<wamid> of a recorded wamid still exists; the record holds it")
	}
	// Later statuses without opaque data: through the reverse index.
	out := applyAll(t, s, status(task, 0, "read", base+9, false), status(task, 2, "delivered", base+1, false))
	if out[0] != StatusCounted || out[1] != StatusCounted {
		t.Errorf("outcomes = %v, want both counted on their task", out)
	}
	if c := counts(t, s, task); c != (DeliveryCounts{Delivered: 3, Read: 2}) {
		t.Errorf("counts = %+v, want delivered 3 read 2", c)
	}
	// The very first status of a task, before its tracking exists at all.
	const task2 = "race2"
	applyAll(t, s, status(task2, 5, "delivered", base, true))
	if _, err := s.Record(ctx, task2, 5, sentEntry(5)); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, s, task2); c.Delivered != 1 {
		t.Errorf("first recipient's early status: counts = %+v, want delivered 1", c)
	}
}

// A failed status after acceptance fails the recipient once, lists it with Meta's code
// and title, and is terminal; a failed after delivered keeps the recipient delivered.
func TestDeliveryFailedAfterSend(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task = "late"
	base := int64(1_760_000_000)
	for i := range 2 {
		if _, err := s.Record(ctx, task, i, sentEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Record(ctx, task, 2, LedgerEntry{State: LedgerFailed, Code: 131026, Error: "Message undeliverable", Phone: "573100000002"}); err != nil {
		t.Fatal(err)
	}
	applyAll(t, s,
		status(task, 0, "sent", base, true), status(task, 0, "failed", base+1, true),
		status(task, 0, "delivered", base+2, true), status(task, 0, "failed", base+3, true),
		status(task, 1, "delivered", base, true), status(task, 1, "failed", base+1, true))
	if c := counts(t, s, task); c != (DeliveryCounts{Delivered: 1, FailedAfterSend: 1}) {
		t.Errorf("counts = %+v, want delivered 1 failed_after_send 1", c)
	}
	r := row(t, s, task, 0)
	if r.Status != RecipientFailed || r.ErrorCode != 131049 || r.Error == "" || r.FailedAt == nil || r.DeliveredAt != nil {
		t.Errorf("row 0 = %+v, want failed 131049 with its title", r)
	}
	if r := row(t, s, task, 1); r.Status != RecipientDelivered || r.FailedAt == nil {
		t.Errorf("row 1 = %+v, want delivered (a failed after delivered is a time only)", r)
	}
	if r := row(t, s, task, 2); r.Status != RecipientFailed || r.ErrorCode != 131026 || r.Error != "Message undeliverable" {
		t.Errorf("row 2 = %+v, want the send's own failure", r)
	}
	late, err := s.LateFailures(ctx, task)
	if err != nil || len(late) != 1 || late[0].Index != 0 || late[0].Code != 131049 || late[0].Phone != "573100000000" {
		t.Errorf("LateFailures = %+v, %v; want recipient 0 with 131049", late, err)
	}
}

// A status for a wamid wagate never recorded is kept as it is, and its timeline answers.
func TestDeliveryUnknownWAMID(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	st := shared.DeliveryStatus{ID: "wamid.unknown", Status: "delivered", Timestamp: "1760000000", RecipientID: "573000000000"}
	if out := applyAll(t, s, st); out[0] != StatusAdvanced {
		t.Errorf("outcome = %d, want advanced under status:<wamid>", out[0])
	}
	got, err := s.GetStatus(ctx, "wamid.unknown")
	if err != nil || got.Status != "delivered" {
		t.Errorf("GetStatus = %+v, %v", got, err)
	}
	m, err := s.Message(ctx, "wamid.unknown")
	if err != nil || m.Source != "unknown" || m.Status != "delivered" || len(m.Timeline) != 1 {
		t.Errorf("Message = %+v, %v", m, err)
	}
	if _, err := s.Message(ctx, "wamid.never"); !errors.Is(err, shared.ErrNotFound) {
		t.Errorf("Message of a wamid never seen = %v, want ErrNotFound", err)
	}
}

func TestMessageTimelines(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task = "tl"
	if _, err := s.Record(ctx, task, 7, sentEntry(7)); err != nil {
		t.Fatal(err)
	}
	applyAll(t, s, status(task, 7, "delivered", 1_760_000_100, true))
	m, err := s.Message(ctx, wamidOf(7))
	if err != nil || m.Source != "task" || m.TaskID != task || m.Index == nil || *m.Index != 7 || m.Status != "delivered" || m.Phone != "573100000007" {
		t.Fatalf("Message = %+v, %v", m, err)
	}
	if len(m.Timeline) != 2 || m.Timeline[1].Status != "delivered" {
		t.Errorf("timeline = %+v, want accepted then delivered", m.Timeline)
	}
	if err := s.RecordDirect(ctx, "wamid.direct", "573000000001", time.Unix(1_760_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	applyAll(t, s, shared.DeliveryStatus{ID: "wamid.direct", Status: "read", Timestamp: "1760000005", RecipientID: "573000000001"})
	m, err = s.Message(ctx, "wamid.direct")
	if err != nil || m.Source != "direct" || m.Status != "read" || len(m.Timeline) != 2 {
		t.Errorf("direct Message = %+v, %v", m, err)
	}
}

// Concurrent repeated statuses and ledger writes count every recipient exactly once.
func TestDeliveryConcurrentCountsOnce(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task, n = "conc", 300
	base := int64(1_760_000_000)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range n {
				sts := []shared.DeliveryStatus{status(task, i, "delivered", base, g%2 == 0), status(task, i, "sent", base, true)}
				if i%3 == 0 {
					sts = append(sts, status(task, i, "read", base+1, g%2 == 1))
				}
				if _, err := s.ApplyStatuses(ctx, sts); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range n {
			if _, err := s.Record(ctx, task, i, sentEntry(i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if c := counts(t, s, task); c != (DeliveryCounts{Delivered: n, Read: n / 3}) {
		t.Errorf("counts = %+v, want delivered %d read %d", c, n, n/3)
	}
}

// What per-recipient tracking of a 100k-recipient task costs in Redis: its records, its
// counters and its share of the wamid index, after sent, delivered and read statuses.
func TestDeliveryMemoryPerRecipient(t *testing.T) {
	if testing.Short() {
		t.Skip("100k recipients")
	}
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task, n = "12345678-1234-1234-1234-123456789abc", 100_000
	before := usedMemory(t, s)
	per, err := MeasureDeliveryMemory(ctx, s, task, n)
	if err != nil {
		t.Fatal(err)
	}
	// Cross-check with the server's own count: INFO's used_memory grew by the tracking,
	// the ledger (which expires an hour after the task) and the keyspace's overhead.
	var ledger int64
	for b := 0; b*ledgerBucket < n; b++ {
		ledger += s.rdb.MemoryUsage(ctx, s.ledgerKey(task, b), 0).Val()
	}
	delta := usedMemory(t, s) - before
	t.Logf("delivery tracking: %.1f bytes per recipient for %d recipients (MEMORY USAGE); INFO used_memory grew %.1f B per recipient, %.1f B without the ledger",
		per, n, float64(delta)/n, float64(delta-ledger)/n)
	if per > 150 {
		t.Errorf("%.1f bytes per recipient, want at most 150", per)
	}
}

func usedMemory(t *testing.T, s *Store) int64 {
	t.Helper()
	info, err := s.rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO")
	return 0
}
