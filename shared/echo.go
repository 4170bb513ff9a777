package shared

import (
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// MaxEcho bounds how much of a client's input an error message quotes: an error must
// say what was wrong without handing a 5,000-character field back to its sender.
const MaxEcho = 64

// Cut returns s when it has at most MaxEcho characters, else its first MaxEcho
// characters marked as cut with the length of the whole.
func Cut(s string) string {
	n := utf8.RuneCountInString(s)
	if n <= MaxEcho {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == MaxEcho {
			break
		}
		count++
	}
	return fmt.Sprintf("%s… [cortado: %d caracteres]", s[:i], n)
}

// Echo quotes client input for an error message, cut as Cut does.
func Echo(s string) string {
	n := utf8.RuneCountInString(s)
	if n <= MaxEcho {
		return strconv.Quote(s)
	}
	cut := Cut(s)
	head := cut[:len(cut)-len(fmt.Sprintf("… [cortado: %d caracteres]", n))]
	return fmt.Sprintf("%s… [cortado: %d caracteres]", strconv.Quote(head), n)
}

// quotedRun finds a quoted run in a text another party wrote (Meta's error details
// echo parts of the request).
var quotedRun = regexp.MustCompile(`'[^']*'|"[^"]*"`)

// CutQuoted cuts every quoted run of s longer than MaxEcho characters, so that an
// upstream error that echoes the request quotes no more of it than wagate's own do.
func CutQuoted(s string) string {
	return quotedRun.ReplaceAllStringFunc(s, func(q string) string {
		inner := q[1 : len(q)-1]
		if utf8.RuneCountInString(inner) <= MaxEcho {
			return q
		}
		return q[:1] + Cut(inner) + q[len(q)-1:]
	})
}
