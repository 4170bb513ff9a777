package shared

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCutAndEcho(t *testing.T) {
	short := strings.Repeat("a", MaxEcho)
	if Cut(short) != short || Echo(short) != `"`+short+`"` {
		t.Errorf("a %d-character input is changed: %q %q", MaxEcho, Cut(short), Echo(short))
	}
	long := strings.Repeat("7", 5000)
	for _, got := range []string{Cut(long), Echo(long)} {
		if !strings.Contains(got, "cortado: 5000 caracteres") || strings.Count(got, "7") > MaxEcho+4 {
			t.Errorf("cut of 5000 characters = %q, want %d of them and the mark", got, MaxEcho)
		}
	}
	emoji := strings.Repeat("😀", 3000)
	got := Echo(emoji)
	if n := strings.Count(got, "😀"); n != MaxEcho || !utf8.ValidString(got) || len(got) > 400 {
		t.Errorf("echo of 3000 emoji keeps %d of them in %d bytes (valid UTF-8 %v), want %d in a short text", n, len(got), utf8.ValidString(got), MaxEcho)
	}
	meta := "invalid URL '" + strings.Repeat("x", 300) + "' (absolute http or https URL required) in 'header'"
	cut := CutQuoted(meta)
	if strings.Count(cut, "x") > MaxEcho || !strings.Contains(cut, "cortado: 300") || !strings.Contains(cut, "'header'") {
		t.Errorf("CutQuoted = %q", cut)
	}
}

// Every validation error that quotes a field's value quotes at most MaxEcho
// characters of it.
func TestValidationErrorsAreBounded(t *testing.T) {
	huge := strings.Repeat("9", 5000)
	emoji := strings.Repeat("😀", 3000)
	errs := []error{
		ValidatePhone("phone", huge),
		ValidatePhone("phone", emoji),
		func() error { _, err := header("", huge, "x"); return err }(),
		func() error {
			_, err := BulkTemplateMessage("", "573123456789", "t", "es", TemplateParts{Params: TemplateParams{Named: map[string]string{huge: "x"}}})
			return err
		}(),
		ValidateList(ListFields{ButtonText: "b", Sections: []Section{{Title: "s", Rows: []Row{{ID: huge[:200], Title: "a"}, {ID: huge[:200], Title: "b"}}}}}, false),
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		msg := ClientMessage(err)
		if strings.Count(msg, "9") > MaxEcho+8 || strings.Count(msg, "😀") > MaxEcho || len(msg) > 600 {
			t.Errorf("case %d: error of %d bytes echoes too much: %.200q", i, len(msg), msg)
		}
		if !strings.Contains(msg, "cortado") {
			t.Errorf("case %d: %q does not mark the cut", i, msg)
		}
	}
}
