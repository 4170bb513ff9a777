package activities

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

const (
	// mediaTTL keeps a task's media id as long as Meta keeps the upload (30 days).
	mediaTTL = 30 * 24 * time.Hour
	// maxErrorText bounds a recipient's stored error text.
	maxErrorText = 300
)

// UploadMedia downloads one header media from the link the client gave and uploads it
// to Meta once per task: a retry after a crash finds the media id in Redis.
func (a *Activities) UploadMedia(ctx context.Context, in shared.UploadMediaInput) (shared.MediaRef, error) {
	out := in.Media
	id, err := a.Store.TaskMedia(ctx, in.TaskID, in.Media.Link)
	if err != nil {
		return out, err
	}
	if id != "" {
		out.MediaID = id
		return out, nil
	}
	data, mime, err := a.Graph.FetchURL(ctx, in.Media.Link)
	if err != nil {
		err = fmt.Errorf("download header media: %w", err)
		if graphapi.Classify(err) == graphapi.ClassPermanent {
			return out, temporal.NewNonRetryableApplicationError(err.Error(), "MediaUnavailable", err)
		}
		return out, err
	}
	id, err = a.Graph.UploadMedia(ctx, data, mime, fileName(in.Media.Link))
	if err != nil {
		if graphapi.Classify(err) != graphapi.ClassRetryable {
			return out, temporal.NewNonRetryableApplicationError(err.Error(), "MediaRejected", err)
		}
		return out, fmt.Errorf("upload header media: %w", err)
	}
	if err := a.Store.SetTaskMedia(ctx, in.TaskID, in.Media.Link, id, mediaTTL); err != nil {
		return out, err
	}
	out.MediaID = id
	return out, nil
}

func fileName(link string) string {
	if u, err := url.Parse(link); err == nil {
		if b := path.Base(u.Path); b != "." && b != "/" {
			return b
		}
	}
	return "media"
}

// SendChunk sends recipients [Offset, Offset+Count) of a task with at most MaxWorkers
// sends in flight and returns when every one of them is final. It is the send activity
// of workflows started before SendRange, kept for them: it runs the same continuous
// dispatcher and send policy as SendRange (breaker, adaptive governor, backoffs that
// hold no slot) over its chunk. Each recipient's outcome is written to the send ledger:
// an index is claimed before Meta is called and recorded after, so a retry of this
// activity (after a worker crash) skips every finished recipient and re-sends only
// those that were in flight.
func (a *Activities) SendChunk(ctx context.Context, in shared.ChunkInput) (shared.ChunkResult, error) {
	if in.Offset < 0 || in.Count < 0 {
		return shared.ChunkResult{}, fmt.Errorf("bad chunk %d+%d", in.Offset, in.Count)
	}
	end := in.Offset + in.Count
	d := &dispatch{
		a: a, pol: a.SendPolicy, taskID: in.TaskID, owner: owner(0, activity.GetInfo(ctx).Attempt),
		workers: max(in.MaxWorkers, 1), start: in.Offset, end: end, media: mediaIDs(in.Media),
		phones: map[int]string{},
	}
	frontier, err := d.run(ctx)
	if err != nil {
		return shared.ChunkResult{}, err
	}
	if frontier < end {
		return shared.ChunkResult{}, fmt.Errorf("recipient %d has no outcome after its chunk finished", frontier)
	}
	sent, failedN, errs, err := d.counts(ctx, in.Offset, end)
	if err != nil {
		return shared.ChunkResult{}, err
	}
	return shared.ChunkResult{Sent: sent, Failed: failedN, Errors: errs}, nil
}

// prepare points a media header at its uploaded id.
func prepare(m shared.Message, media map[string]string) shared.Message {
	if m.Header.IsMedia() && m.Header.MediaID == "" {
		if id, ok := media[m.Header.Link]; ok {
			h := *m.Header
			h.MediaID = id
			m.Header = &h
		}
	}
	return m
}

// errSuperseded stops an attempt that Temporal has already replaced by a newer one.
var errSuperseded = errors.New("a newer attempt of this task's sends holds its recipients; this attempt stops")

func failed(err error) redisstore.LedgerEntry {
	msg := err.Error()
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText] + "…"
	}
	return redisstore.LedgerEntry{State: redisstore.LedgerFailed, Code: graphapi.Code(err), Error: msg}
}

// FinishTask stores the final state of a task, so task-status answers after Temporal's
// retention has dropped the workflow, and lets the task's working keys expire.
func (a *Activities) FinishTask(ctx context.Context, st shared.TaskState) error {
	if err := a.Store.SaveSummary(ctx, st, a.Config.SummaryTTL); err != nil {
		return err
	}
	// Status webhooks keep moving the task's delivery counts as long as its summary is
	// kept; an hour more covers the webhooks of its last minutes.
	if err := a.Store.KeepDelivery(ctx, st.TaskID, st.Result.Total, a.Config.SummaryTTL+time.Hour); err != nil {
		return err
	}
	return a.Store.FinishTask(ctx, st.TaskID, time.Hour)
}
