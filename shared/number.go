package shared

import (
	"encoding/json"
	"time"
)

// Number is one entry of the numbers cache.
type Number struct {
	Phone     string          `json:"phone"`
	Name      string          `json:"name"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}
