package shared

import "time"

// Task statuses as the contract's task-status endpoint reports them.
const (
	StatusPending = "PENDING"
	StatusStarted = "STARTED"
	StatusSuccess = "SUCCESS"
	StatusFailure = "FAILURE"
	// StatusPaused is a task that waits for something that is not an outage: a template
	// Meta paused or disabled mid-campaign. It goes on by itself when that clears.
	StatusPaused = "PAUSED"
)

// WaitTemplatePaused is what a template campaign waits on while Meta refuses its
// template as paused (132015) or disabled (132016): no recipient fails for it, one
// probe at a time checks whether the template is active again.
const (
	WaitTemplatePaused = "template_paused"
)

// MaxTaskErrors caps the per-recipient errors a task keeps in its state and result.
const MaxTaskErrors = 100

// MediaRef is one header media of a task: the link a client gave and the media id it
// was uploaded as.
type MediaRef struct {
	Type    string `json:"type"`
	Link    string `json:"link"`
	MediaID string `json:"media_id,omitempty"`
}

// RecipientError says why one recipient of a task failed.
type RecipientError struct {
	Index int    `json:"index"`
	Phone string `json:"phone"`
	Error string `json:"error"`
	Code  int    `json:"code,omitempty"` // Meta's error code, when Meta answered
}

// BulkInput starts a BulkSend workflow. The recipients' messages are staged in Redis
// under TaskID (claim check), never in the workflow input. The counters and Cursor are
// carried across continue-as-new.
type BulkInput struct {
	TaskID     string     `json:"task_id"`
	Kind       string     `json:"kind"` // the endpoint that created the task, e.g. "send-bulk"
	Total      int        `json:"total"`
	MaxWorkers int        `json:"max_workers"`
	Media      []MediaRef `json:"media,omitempty"` // distinct header media, uploaded once each
	CreatedAt  time.Time  `json:"created_at"`
	// ChunksPerRun is how many chunks one run sends before it continues as new; 0 means
	// the workflow's default.
	ChunksPerRun int `json:"chunks_per_run,omitempty"`

	// Carried state.
	Cursor      int              `json:"cursor,omitempty"`
	Sent        int              `json:"sent,omitempty"`
	Failed      int              `json:"failed,omitempty"`
	Errors      []RecipientError `json:"errors,omitempty"`
	MediaFailed string           `json:"media_failed,omitempty"`
	// Seq counts the SendRange activities the task has run, across continue-as-new: the
	// owner of its send-ledger claims grows with it.
	Seq int `json:"seq,omitempty"`
	// Waiting is set while the last SendRange found the Graph API circuit open
	// ("graph_api_unavailable" or "graph_api_auth"), since WaitingSince.
	Waiting      string     `json:"waiting,omitempty"`
	WaitingSince *time.Time `json:"waiting_since,omitempty"`

	// Task control (workflow version "task-control"). SendAt is when a scheduled task
	// starts sending; Paused (since PausedSince) is a client's pause, carried across
	// continue-as-new; Indexed says the task was started with wagate's search
	// attributes, so the workflow keeps WagateStatus up to date.
	SendAt      *time.Time `json:"send_at,omitempty"`
	Paused      bool       `json:"paused,omitempty"`
	PausedSince *time.Time `json:"paused_since,omitempty"`
	Indexed     bool       `json:"indexed,omitempty"`
}

// TaskResult is the outcome of a task: the workflow result, the stored summary and the
// "result" object of task-status.
type TaskResult struct {
	Sent   int              `json:"sent"`
	Failed int              `json:"failed"`
	Total  int              `json:"total"`
	Errors []RecipientError `json:"errors"`
}

// TaskState is what the status query answers and what task-status renders.
type TaskState struct {
	TaskID      string     `json:"task_id"`
	Kind        string     `json:"kind"`
	Status      string     `json:"status"`
	Result      TaskResult `json:"result"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at"`
	// Waiting says what a running task waits on, when it cannot send: the Graph API
	// circuit of its number is open ("graph_api_unavailable", "graph_api_auth"), since
	// WaitingSince.
	Waiting      string     `json:"waiting,omitempty"`
	WaitingSince *time.Time `json:"waiting_since,omitempty"`
	// SendAt is a scheduled task's start (it is PENDING until then).
	SendAt *time.Time `json:"send_at,omitempty"`
}

// ChunkInput asks the send activity for recipients [Offset, Offset+Count) of a task.
type ChunkInput struct {
	TaskID     string     `json:"task_id"`
	Offset     int        `json:"offset"`
	Count      int        `json:"count"`
	MaxWorkers int        `json:"max_workers"`
	Media      []MediaRef `json:"media,omitempty"`
}

// RangeInput asks the SendRange activity to send recipients from Offset on (all
// before Offset are final) up to End, continuously with at most MaxWorkers sends in
// flight, and to return every so often with the frontier reached.
type RangeInput struct {
	TaskID     string     `json:"task_id"`
	Offset     int        `json:"offset"`
	End        int        `json:"end"`
	MaxWorkers int        `json:"max_workers"`
	Media      []MediaRef `json:"media,omitempty"`
	// Seq numbers the activity within its task; the ledger owner of an attempt is
	// Seq<<20 + attempt, so a later activity takes over every earlier one's entries.
	Seq int `json:"seq"`
	// Waiting is what the workflow's memo says the task waits on ("" nothing): the
	// activity returns when that changes, so the memo follows. WaitingSince is since
	// when, carried so that a wait spanning activities keeps its start.
	Waiting      string     `json:"waiting,omitempty"`
	WaitingSince *time.Time `json:"waiting_since,omitempty"`
	// Control makes the activity poll the task's control key, and return as soon as a
	// pause or a cancel is written there (Halted), letting the sends in flight finish.
	Control bool `json:"control,omitempty"`
}

// RangeResult is what SendRange reached: every recipient below Frontier is final, and
// Sent, Failed and Errors count those in [Offset, Frontier).
type RangeResult struct {
	Frontier     int              `json:"frontier"`
	Sent         int              `json:"sent"`
	Failed       int              `json:"failed"`
	Errors       []RecipientError `json:"errors,omitempty"`
	Waiting      string           `json:"waiting,omitempty"`
	WaitingSince *time.Time       `json:"waiting_since,omitempty"`
	// Delivered and Read are the task's delivery counts when the activity returned (the
	// whole task's, from status webhooks), for the Web UI memo.
	Delivered int `json:"delivered,omitempty"`
	Read      int `json:"read,omitempty"`
	// Halted: the activity returned for a pause or a cancel; recipients above Frontier
	// may be final too (the ledger says which).
	Halted bool `json:"halted,omitempty"`
}

// ChunkResult counts one chunk's outcome; Errors is capped at MaxTaskErrors.
type ChunkResult struct {
	Sent   int              `json:"sent"`
	Failed int              `json:"failed"`
	Errors []RecipientError `json:"errors,omitempty"`
}

// UploadMediaInput asks for one header media of a task to be uploaded to Meta.
type UploadMediaInput struct {
	TaskID string   `json:"task_id"`
	Media  MediaRef `json:"media"`
}

// ChunkSize is how many recipients one send activity takes: large enough that the pause
// between two chunks costs little throughput, small enough that the Web UI and the
// carried counters move every few seconds.
func ChunkSize(maxWorkers int) int {
	return min(max(50*maxWorkers, 500), 10_000)
}
