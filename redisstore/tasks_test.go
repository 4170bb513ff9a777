package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/shared"
)

func newTaskTestStore(t *testing.T) *Store {
	t.Helper()
	return New(testredis.New(t), "")
}

// testMessages returns n messages of varied kinds whose contents depend on the index,
// so that a message out of place is noticed.
func testMessages(n int) []shared.Message {
	msgs := make([]shared.Message, n)
	for i := range msgs {
		to := fmt.Sprintf("5731%08d", i)
		switch i % 4 {
		case 0:
			msgs[i] = shared.Message{To: to, Kind: shared.KindText, Body: fmt.Sprintf("hola %d | ñ", i)}
		case 1:
			msgs[i] = shared.Message{To: to, Kind: shared.KindTemplate, Template: &shared.Template{
				Name: "promo", Language: "es", Parameters: []string{fmt.Sprint(i), "x"},
			}}
		case 2:
			msgs[i] = shared.Message{To: to, Kind: shared.KindCTAURL, Body: "b", Button: "Ver",
				URL:    fmt.Sprintf("https://example.com/%d", i),
				Header: &shared.Header{Type: shared.HeaderImage, Link: "https://example.com/a.png"}}
		case 3:
			msgs[i] = shared.Message{To: to, Kind: shared.KindList, Body: "elige", Button: "Menú",
				Sections: []shared.Section{{Title: "S", Rows: []shared.Row{{ID: fmt.Sprint(i), Title: "r"}}}}}
		}
	}
	return msgs
}

func TestStageLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const n = 10_000
	msgs := testMessages(n)
	if err := s.StageMessages(ctx, "t1", msgs, time.Hour); err != nil {
		t.Fatalf("StageMessages: %v", err)
	}

	tests := []struct {
		name          string
		offset, count int
		want          []shared.Message
	}{
		{"head", 0, 5, msgs[0:5]},
		{"across a staging batch", 995, 10, msgs[995:1005]},
		{"exactly the tail", n - 3, 3, msgs[n-3:]},
		{"range past the end", n - 10, 500, msgs[n-10:]},
		{"offset past the end", n, 10, []shared.Message{}},
		{"empty range", 42, 0, []shared.Message{}},
		{"everything", 0, n, msgs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.LoadMessages(ctx, "t1", tt.offset, tt.count)
			if err != nil {
				t.Fatalf("LoadMessages(%d, %d): %v", tt.offset, tt.count, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("LoadMessages(%d, %d) returned %d messages, want %d", tt.offset, tt.count, len(got), len(tt.want))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("LoadMessages(%d, %d) = %+v..., want %+v...", tt.offset, tt.count, got[0], tt.want[0])
			}
		})
	}

	ttl, err := s.rdb.PTTL(ctx, s.msgsKey("t1")).Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("PTTL of staged list = %v, %v; want about 1h", ttl, err)
	}
}

func TestStageMessagesReplaces(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	first, second := testMessages(2500), testMessages(3)[1:]
	if err := s.StageMessages(ctx, "t", first, time.Hour); err != nil {
		t.Fatalf("StageMessages (first): %v", err)
	}
	if err := s.StageMessages(ctx, "t", second, time.Minute); err != nil {
		t.Fatalf("StageMessages (second): %v", err)
	}
	got, err := s.LoadMessages(ctx, "t", 0, 100)
	if err != nil {
		t.Fatalf("LoadMessages: %v", err)
	}
	if !reflect.DeepEqual(got, second) {
		t.Errorf("after restaging, LoadMessages = %+v, want only the second list %+v", got, second)
	}
	if ttl := s.rdb.PTTL(ctx, s.msgsKey("t")).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("PTTL after restaging = %v, want the second TTL (<= 1m)", ttl)
	}
	if keys := s.rdb.Keys(ctx, "*"+stagingTmpInfix+"*").Val(); len(keys) != 0 {
		t.Errorf("temporary staging keys left behind: %v", keys)
	}

	if err := s.StageMessages(ctx, "t", nil, time.Minute); err != nil {
		t.Fatalf("StageMessages (empty): %v", err)
	}
	if _, err := s.LoadMessages(ctx, "t", 0, 1); !errors.Is(err, shared.ErrNotFound) {
		t.Errorf("LoadMessages after staging nothing: err = %v, want ErrNotFound", err)
	}
}

func TestLoadMessagesErrors(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	if err := s.StageMessages(ctx, "t", testMessages(3), time.Hour); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		task          string
		offset, count int
		notFound      bool
	}{
		{"never staged", "other", 0, 10, true},
		{"negative offset", "t", -1, 10, false},
		{"negative count", "t", 0, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.LoadMessages(ctx, tt.task, tt.offset, tt.count)
			if err == nil {
				t.Fatalf("LoadMessages(%q, %d, %d) = nil error, want one", tt.task, tt.offset, tt.count)
			}
			if got := errors.Is(err, shared.ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, got, tt.notFound)
			}
		})
	}
}

func TestTaskMedia(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const link = "https://example.com/banner.png"
	if got, err := s.TaskMedia(ctx, "t", link); err != nil || got != "" {
		t.Fatalf("TaskMedia before upload = %q, %v; want \"\", nil", got, err)
	}
	if err := s.SetTaskMedia(ctx, "t", link, "1234567890", time.Hour); err != nil {
		t.Fatalf("SetTaskMedia: %v", err)
	}
	tests := []struct{ task, link, want string }{
		{"t", link, "1234567890"},
		{"t", "https://example.com/other.png", ""},
		{"u", link, ""},
	}
	for _, tt := range tests {
		if got, err := s.TaskMedia(ctx, tt.task, tt.link); err != nil || got != tt.want {
			t.Errorf("TaskMedia(%q, %q) = %q, %v; want %q", tt.task, tt.link, got, err, tt.want)
		}
	}
	if ttl := s.rdb.PTTL(ctx, s.mediaKey("t")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("PTTL of media ids = %v, want (0, 1h]", ttl)
	}
}

func TestSummaryRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	done := created.Add(90 * time.Second)
	want := shared.TaskState{
		TaskID: "t-1", Kind: "send-bulk", Status: shared.StatusSuccess,
		Result: shared.TaskResult{Sent: 2, Failed: 1, Total: 3, Errors: []shared.RecipientError{
			{Index: 2, Phone: "573100000002", Error: "número inválido", Code: 131026},
		}},
		CreatedAt: created, CompletedAt: &done,
	}
	if err := s.SaveSummary(ctx, want, 24*time.Hour); err != nil {
		t.Fatalf("SaveSummary: %v", err)
	}
	got, err := s.Summary(ctx, "t-1")
	if err != nil {
		t.Fatalf("Summary: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Summary = %+v, want %+v", got, want)
	}
	if ttl := s.rdb.PTTL(ctx, s.summaryKey("t-1")).Val(); ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("PTTL of summary = %v, want about 24h", ttl)
	}

	_, err = s.Summary(ctx, "missing")
	if !errors.Is(err, shared.ErrNotFound) {
		t.Errorf("Summary(missing) err = %v, want ErrNotFound", err)
	}
	if got := shared.HTTPStatus(err); got != 404 {
		t.Errorf("HTTPStatus(Summary(missing) error) = %d, want 404", got)
	}
	if err := s.SaveSummary(ctx, shared.TaskState{}, time.Hour); err == nil {
		t.Error("SaveSummary without a task id = nil error, want one")
	}
}

func TestFinishTaskSetsTTLs(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const task = "fin"
	if err := s.StageMessages(ctx, task, testMessages(1500), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	// Entries in buckets 0, 1 and 14, leaving the buckets between empty.
	for _, i := range []int{0, 150, 1499} {
		if _, err := s.Claim(ctx, task, i, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Record(ctx, task, 150, LedgerEntry{State: LedgerSent, WAMID: "wamid.x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetTaskMedia(ctx, task, "https://example.com/a.png", "77", 30*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSummary(ctx, shared.TaskState{TaskID: task, Status: shared.StatusSuccess}, 30*24*time.Hour); err != nil {
		t.Fatal(err)
	}

	working := []string{
		s.msgsKey(task), s.ledgerKey(task, 0), s.ledgerKey(task, 1), s.ledgerKey(task, 14),
		s.progressKey(task), s.mediaKey(task),
	}
	// Before FinishTask, ledger and counters live as long as the staged messages.
	for _, k := range working[:5] {
		if ttl := s.rdb.PTTL(ctx, k).Val(); ttl <= 23*time.Hour || ttl > 24*time.Hour {
			t.Errorf("before FinishTask, PTTL(%s) = %v, want the staging TTL (about 24h)", k, ttl)
		}
	}

	if err := s.FinishTask(ctx, task, time.Minute); err != nil {
		t.Fatalf("FinishTask: %v", err)
	}
	for _, k := range working {
		if ttl := s.rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("after FinishTask, PTTL(%s) = %v, want (0, 1m]", k, ttl)
		}
	}
	if ttl := s.rdb.PTTL(ctx, s.summaryKey(task)).Val(); ttl < 29*24*time.Hour {
		t.Errorf("after FinishTask, PTTL(summary) = %v, want its own 30 days", ttl)
	}
	if sent, failed, err := s.Progress(ctx, task); err != nil || sent != 1 || failed != 0 {
		t.Errorf("Progress after FinishTask = %d, %d, %v; want 1, 0 until the keys expire", sent, failed, err)
	}

	if err := s.FinishTask(ctx, task, 0); err != nil {
		t.Fatalf("FinishTask(ttl 0): %v", err)
	}
	if n := s.rdb.Exists(ctx, working...).Val(); n != 0 {
		t.Errorf("after FinishTask(ttl 0), %d working keys remain, want 0", n)
	}
	if _, err := s.Summary(ctx, task); err != nil {
		t.Errorf("Summary after FinishTask(ttl 0): %v, want it kept", err)
	}
	if err := s.FinishTask(ctx, "never-existed", time.Minute); err != nil {
		t.Errorf("FinishTask of an unknown task: %v, want nil", err)
	}
}
