package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"go.yaml.in/yaml/v4"
)

// single records a second document in what l reads, after the first: kiln reads one document
// a file, and the rest would be ignored without a word. Empty documents (a trailing ---) are
// harmless.
func (c *collector) single(l *yaml.Loader, data []byte) bool {
	for {
		var next yaml.Node
		err := l.Load(&next)
		switch {
		case errors.Is(err, io.EOF):
			return true
		case err != nil:
			c.yamlError(err, data)
			return false
		case top(&next) != nil:
			c.addAt(pos{next.Line, max(next.Column, 1)}, "", "a second YAML document starts here: kiln reads one document a file")
			return false
		}
	}
}

// badCharacter finds the first byte of data that is not UTF-8 or is a character YAML does not
// allow unescaped, and says where it is (the column counted in characters) and what it is.
// UTF-16 text (with a byte order mark) is left to the parser.
func badCharacter(data []byte) (pos, string, bool) {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return pos{}, "", false
	}
	at := pos{1, 1}
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return at, fmt.Sprintf("invalid UTF-8 (byte 0x%02x): kiln reads UTF-8 text", data[i]), true
		case !printable(r):
			return at, fmt.Sprintf("character %U is not allowed as it is: write it as an escape (%s) in a double-quoted string", r, escape(r)), true
		case r == '\n':
			at = pos{at.line + 1, 1}
		default:
			at.col++
		}
		i += n
	}
	return pos{}, "", false
}

// printable is YAML 1.2's set of characters a document may hold as they are.
func printable(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r' || r == 0x85:
		return true
	case r < 0x20 || r == 0x7f:
		return false
	case r < 0x7f:
		return true
	}
	return r >= 0xa0 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
}

// escape is YAML's double-quoted escape for r.
func escape(r rune) string {
	if r <= 0xff {
		return fmt.Sprintf(`\x%02x`, r)
	}
	return fmt.Sprintf(`\u%04x`, r)
}
