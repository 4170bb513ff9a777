package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// controlTTL bounds a task's control key: it only has to outlive the SendRange activity
// that is stopping for it (seconds); a paused task sends nothing without it.
const controlTTL = time.Hour

func (s *Store) controlKey(taskID string) string { return s.taskKey(taskID, "control") }

// SetTaskControl writes what the running send activity of a task must do: "pause" or
// "cancel" (stop claiming recipients and return), or "" (clear: nothing).
func (s *Store) SetTaskControl(ctx context.Context, taskID, action string) error {
	var err error
	if action == "" {
		err = s.rdb.Del(ctx, s.controlKey(taskID)).Err()
	} else {
		err = s.rdb.Set(ctx, s.controlKey(taskID), action, controlTTL).Err()
	}
	if err != nil {
		return fmt.Errorf("redis: control of task %s: %w", taskID, err)
	}
	return nil
}

// TaskControl reads a task's control key; "" when there is none.
func (s *Store) TaskControl(ctx context.Context, taskID string) (string, error) {
	v, err := s.rdb.Get(ctx, s.controlKey(taskID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redis: control of task %s: %w", taskID, err)
	}
	return v, nil
}
