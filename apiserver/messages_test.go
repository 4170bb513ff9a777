package apiserver

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/wagate/wagate/shared"
)

// messages builds each element without its path, and makes the path only for the
// first invalid element's error: the messages and the errors are those of a build
// with the path.
func TestMessagesNamesTheFirstInvalidElement(t *testing.T) {
	text := func(p string, rc shared.BulkTextRecipient) (shared.Message, error) {
		return shared.TextMessage(p, rc.Phone, rc.Message)
	}
	valid := []shared.BulkTextRecipient{{Phone: "573001112233", Message: "hola"}, {Phone: "573004445566", Message: "adiós"}}
	got, err := messages("recipients", valid, text)
	if err != nil {
		t.Fatalf("valid recipients: %v", err)
	}
	for i, rc := range valid {
		want, _ := text(shared.Index("recipients", i), rc)
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want)
		}
	}

	tests := []struct {
		name  string
		items []shared.BulkTextRecipient
		want  string
	}{
		{"bad phone", append(valid, shared.BulkTextRecipient{Phone: "12", Message: "x"}), "'recipients[2].phone'"},
		{"missing message", []shared.BulkTextRecipient{valid[0], {Phone: "573001112233"}, {Phone: "1"}}, "'recipients[1].message'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := messages("recipients", tt.items, text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one naming %s", err, tt.want)
			}
			var se *shared.Error
			if !errors.As(err, &se) || se.Kind != shared.KindInvalid {
				t.Errorf("error %v is not of kind invalid (a 400)", err)
			}
		})
	}

	interactive := []shared.InteractiveRecipient{{Phone: "573001112233", InteractiveFields: shared.InteractiveFields{
		BodyText: "b", ButtonText: "Ver", ButtonURL: "ftp://x"}}}
	_, err = messages("recipients", interactive, func(p string, rc shared.InteractiveRecipient) (shared.Message, error) {
		return shared.InteractiveMessage(p, rc.Phone, rc.InteractiveFields)
	})
	if err == nil || !strings.Contains(err.Error(), "'recipients[0].button_url'") {
		t.Errorf("interactive error = %v, want one naming recipients[0].button_url", err)
	}
}
