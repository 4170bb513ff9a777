package devserver

import (
	"context"
	"log/slog"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// serverLogger adapts an slog.Logger to the server's logger interface.
type serverLogger struct {
	log *slog.Logger
}

var (
	_ log.Logger      = serverLogger{}
	_ log.WithLogger  = serverLogger{}
	_ log.SLogWrapper = serverLogger{}
)

// newServerLogger tags records as the server's and drops those below level, which Stop
// raises so that shutdown noise does not reach the console.
func newServerLogger(l *slog.Logger, level *slog.LevelVar) serverLogger {
	gated := slog.New(gatedHandler{inner: l.Handler(), level: level})
	return serverLogger{log: gated.With("component", "temporal")}
}

func (s serverLogger) Debug(msg string, tags ...tag.Tag) { s.emit(slog.LevelDebug, msg, tags) }
func (s serverLogger) Info(msg string, tags ...tag.Tag)  { s.emit(slog.LevelInfo, msg, tags) }
func (s serverLogger) Warn(msg string, tags ...tag.Tag)  { s.emit(slog.LevelWarn, msg, tags) }
func (s serverLogger) Error(msg string, tags ...tag.Tag) { s.emit(slog.LevelError, msg, tags) }

// DPanic, Panic and Fatal only log: an embedded server must never end the host process.
func (s serverLogger) DPanic(msg string, tags ...tag.Tag) { s.emit(slog.LevelError, msg, tags) }
func (s serverLogger) Panic(msg string, tags ...tag.Tag)  { s.emit(slog.LevelError, msg, tags) }
func (s serverLogger) Fatal(msg string, tags ...tag.Tag)  { s.emit(slog.LevelError, msg, tags) }

// With returns a logger that adds tags to every record.
func (s serverLogger) With(tags ...tag.Tag) log.Logger {
	args := make([]any, len(tags))
	for i, t := range tags {
		args[i] = slog.Any(t.Key(), t.Value())
	}
	return serverLogger{log: s.log.With(args...)}
}

// SLog exposes the gated logger to server code that logs through slog directly.
func (s serverLogger) SLog() *slog.Logger { return s.log }

func (s serverLogger) emit(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, len(tags))
	for i, t := range tags {
		attrs[i] = slog.Any(t.Key(), t.Value())
	}
	s.log.LogAttrs(ctx, level, msg, attrs...)
}

// gatedHandler passes records at or above a level that can change at run time.
type gatedHandler struct {
	inner slog.Handler
	level *slog.LevelVar
}

func (h gatedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.inner.Enabled(ctx, l)
}

func (h gatedHandler) Handle(ctx context.Context, r slog.Record) error { return h.inner.Handle(ctx, r) }

func (h gatedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return gatedHandler{inner: h.inner.WithAttrs(attrs), level: h.level}
}

func (h gatedHandler) WithGroup(name string) slog.Handler {
	return gatedHandler{inner: h.inner.WithGroup(name), level: h.level}
}
