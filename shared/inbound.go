package shared

import (
	"encoding/json"
	"errors"
	"time"
)

// Names of the activities the inbound relay workflow runs. They are the method names of
// the worker's Activities, so that the workflow code needs no import of the activities.
const (
	// RelayInboundActivity writes one stored inbound event to WEBSOCKET_URL.
	RelayInboundActivity = "RelayInbound"
	// SpillInboundActivity moves a run of queued refs out of the workflow state into Redis.
	SpillInboundActivity = "SpillInbound"
	// LoadInboundSpillActivity reads a spilled run of refs back.
	LoadInboundSpillActivity = "LoadInboundSpill"
	// DropInboundSpillActivity deletes a spilled run once it is back in the workflow.
	DropInboundSpillActivity = "DropInboundSpill"
	// RelayInboundBatchActivity writes the head run of the queue to WEBSOCKET_URL, in
	// order, and reports how far it got.
	RelayInboundBatchActivity = "RelayInboundBatch"
)

// InboundBatchSignal carries an InboundBatch into the relay workflow: the refs of every
// webhook the API server accepted while its previous signal was in flight, in order.
const InboundBatchSignal = "inbound-batch"

// InboundBatch is the payload of InboundBatchSignal: refs only, a few dozen bytes each.
type InboundBatch struct {
	Refs []InboundRef `json:"refs"`
}

// Relay batching.
const (
	// MaxRelayBatch bounds the refs the relay workflow hands one RelayInboundBatch
	// activity (about 40 KB of input in the history).
	MaxRelayBatch = 500
	// MaxRelayBatchBytes bounds the frame bytes one RelayInboundBatch attempt writes
	// before it reports back, so that one attempt never holds much memory.
	MaxRelayBatchBytes = 4 << 20
	// RelayWindow is how many frames the relay writes, each followed by its ping, before
	// it waits for their pongs. Those frames are the only ones that can be written twice
	// when the connection fails or the worker dies; a confirmed frame never is.
	RelayWindow = 32
)

// RelayBatchInput is the head run of the relay's queue, in order.
type RelayBatchInput struct {
	Refs []InboundRef `json:"refs"`
}

// RelayBatchResult reports how far a RelayInboundBatch activity got: the first Done
// refs of its input are finished, Relayed of them confirmed by the consumer and Dropped
// of them dropped because their stored event is gone or invalid. Failure tells why it
// stopped before the end of its input ("" when it reached the end, or stopped at its
// time or byte budget); the rest of the input is then retried 5 s later.
type RelayBatchResult struct {
	Done    int    `json:"done"`
	Relayed int    `json:"relayed"`
	Dropped int    `json:"dropped"`
	Failure string `json:"failure,omitempty"`
}

// ErrTypeInboundMissing is the ApplicationError type of an inbound event (or a spilled
// run of refs) that is no longer in Redis: retrying cannot help, so the relay drops it.
const ErrTypeInboundMissing = "InboundMissing"

// Inbound retention.
const (
	// InboundDedupeTTL is how long a message id (wamid) is remembered by the webhook: Meta
	// retries an unacknowledged webhook for up to 7 days.
	InboundDedupeTTL = 7 * 24 * time.Hour
	// InboundEventTTL is how long a queued event's body is kept for the relay; an event
	// still queued after that is dropped.
	InboundEventTTL = 14 * 24 * time.Hour
	// MaxRelayRecentIDs bounds the relay's own dedupe set of recent message ids.
	MaxRelayRecentIDs = 1000
	// MaxRelayCarriedRefs bounds the refs carried in RelayState.Queue and RelayState.Tail
	// each: beyond it the overflow is spilled to Redis, so that the carried state stays
	// far below Temporal's payload limits however long the consumer is down.
	MaxRelayCarriedRefs = 500
)

// InboundRef is the claim check of one inbound event: the event itself is stored in Redis
// under ID (the wamid, or "test-<uuid>" for queue tests) and only the ref travels through
// Temporal, so signals stay a few dozen bytes.
type InboundRef struct {
	ID string `json:"id"`
}

// InboundEvent is what the webhook stores for one inbound message: the webhook JSON
// narrowed to that message. The relay adds save_number and cached_info at relay time.
type InboundEvent struct {
	ID    string          `json:"id"`
	From  string          `json:"from"`
	Event json.RawMessage `json:"event"`
	// AcceptedAt is when the webhook accepted the event (Unix milliseconds; 0 for events
	// stored before it was recorded), for the relay's delivery-lag metric. It is not
	// part of the relayed frame.
	AcceptedAt int64 `json:"accepted_at,omitempty"`
}

// RelayProgress is what a RelayInboundBatch attempt records in Redis as frames are
// confirmed, so that an attempt retried after its worker died resumes after them.
type RelayProgress struct {
	// ActivityID names the activity (unique within its workflow run) the progress is of.
	ActivityID string `json:"activity_id"`
	RelayBatchResult
}

// SpillSegment is a run of queued refs stored in Redis under Key, in queue order.
type SpillSegment struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// SpillInput asks the spill activity to store Refs under Key.
type SpillInput struct {
	Key  string       `json:"key"`
	Refs []InboundRef `json:"refs"`
}

// RelayState is the input of InboundRelay and what it carries across continue-as-new.
// The logical queue, in order, is Queue, then every Spilled segment, then Tail; Tail is
// used only while segments exist, so that arrivals never overtake spilled refs. Queue[0]
// is the head: it leaves the queue only once relayed (or cleared, or dropped as missing).
type RelayState struct {
	Queue    []InboundRef   `json:"queue,omitempty"`
	Spilled  []SpillSegment `json:"spilled,omitempty"`
	Tail     []InboundRef   `json:"tail,omitempty"`
	SpillSeq int64          `json:"spill_seq,omitempty"`
	// Recent holds the last MaxRelayRecentIDs ids enqueued, oldest first.
	Recent []string `json:"recent,omitempty"`
	// Relayed and Dropped count events over the workflow's whole life.
	Relayed int64 `json:"relayed,omitempty"`
	Dropped int64 `json:"dropped,omitempty"`
}

// QueueInfo is the relay's answer to PendingQuery. HeadAttempt and LastError are not
// known inside the workflow (retries happen on the server); the API server fills them from
// the pending activity of DescribeWorkflowExecution.
type QueueInfo struct {
	// Pending counts every event not yet relayed, the head in flight included.
	Pending int `json:"pending"`
	// HeadID is the id of the event being relayed, "" when idle.
	HeadID      string `json:"head_id,omitempty"`
	HeadAttempt int32  `json:"head_attempt,omitempty"`
	LastError   string `json:"last_error,omitempty"`
	Relayed     int64  `json:"relayed"`
	Dropped     int64  `json:"dropped"`
}

// Delivery statuses of outbound messages, in the order they may advance.
const (
	DeliverySent      = "sent"
	DeliveryDelivered = "delivered"
	DeliveryRead      = "read"
	DeliveryPlayed    = "played"
	DeliveryFailed    = "failed"
)

// DeliveryStatus is the latest status Meta reported for one outbound message. It only
// moves forward: sent < delivered < read < played, and failed is terminal.
type DeliveryStatus struct {
	ID                    string          `json:"id"` // the wamid
	Status                string          `json:"status"`
	Timestamp             string          `json:"timestamp"` // unix seconds, as Meta sends it
	RecipientID           string          `json:"recipient_id"`
	Errors                json.RawMessage `json:"errors,omitempty"`
	BizOpaqueCallbackData string          `json:"biz_opaque_callback_data,omitempty"`
	// Seen maps every status received, even out of order, to its timestamp.
	Seen map[string]string `json:"seen,omitempty"`
}

// RelayedMessageID returns the message id of a frame the relay wrote to the WebSocket:
// Meta's webhook envelope narrowed to exactly one message (docs/inbound.md).
func RelayedMessageID(frame []byte) (string, error) {
	var f struct {
		Entry []struct {
			Changes []struct {
				Value struct {
					Messages []struct {
						ID string `json:"id"`
					} `json:"messages"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(frame, &f); err != nil {
		return "", err
	}
	if len(f.Entry) != 1 || len(f.Entry[0].Changes) != 1 || len(f.Entry[0].Changes[0].Value.Messages) != 1 {
		return "", errors.New("not one message")
	}
	return f.Entry[0].Changes[0].Value.Messages[0].ID, nil
}
