// Package sqlsplit cuts a SQL file into the statements psql would send one
// by one. A migration marked `transaction:false` must run statement by
// statement: sent as one multi-statement query, Postgres runs it as one
// implicit transaction, and CREATE INDEX CONCURRENTLY refuses to run there
// (SQLSTATE 25001). dbmate sends the whole file (amacneil/dbmate#182).
//
// The rules are psql's lexer's (src/fe_utils/psqlscan.l): a `;` ends a statement unless it is inside a
// quoted string ('...' with ” doubling, E'...' with backslash escapes),
// a quoted identifier ("..."), a dollar quote ($$...$$, $tag$...$tag$), a
// comment (-- to the line's end, /* */ nested), parentheses, or the
// BEGIN ... END body of a CREATE [OR REPLACE] FUNCTION|PROCEDURE (SQL-standard
// bodies, BEGIN ATOMIC). psql's heuristic for that body is copied as it is:
// a statement that starts CREATE [OR REPLACE] FUNCTION|PROCEDURE counts
// BEGIN and END (and CASE inside a BEGIN, which also ends with END).
package sqlsplit

import (
	"strings"
	"unicode/utf8"
)

// Statement is one statement of a file, without its closing `;`.
type Statement struct {
	SQL  string
	Line int // 1-based line of the statement's first token in the file
}

// Split returns the statements of sql in order. Stretches holding only
// white space and comments are not statements. A string, quote or comment
// left open at the end makes the rest one last statement, as psql sends it:
// the server then reports the syntax error with its position.
func Split(sql string) []Statement {
	s := scanner{src: sql, line: 1}
	return s.run()
}

type scanner struct {
	src  string
	pos  int
	line int

	stmtStart, stmtLine int  // where the current statement's first token is
	inStmt              bool // a token has been seen since the last `;`
	parenDepth          int
	beginDepth          int
	// The first words of the statement, lower-cased, for the
	// CREATE [OR REPLACE] FUNCTION|PROCEDURE test (psql keeps 4).
	words []string

	out []Statement
}

func (s *scanner) run() []Statement {
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case c == '\n' || c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			s.advance(1)
		case c == '-' && s.peek(1) == '-':
			s.skipLineComment()
		case c == '/' && s.peek(1) == '*':
			s.skipBlockComment()
		case c == ';' && s.parenDepth == 0 && s.beginDepth == 0:
			s.end(s.pos)
			s.advance(1)
		default:
			s.token(c)
		}
	}
	s.end(len(s.src))
	return s.out
}

// token consumes one token that starts at s.pos and is part of a statement.
func (s *scanner) token(c byte) {
	if !s.inStmt {
		s.inStmt, s.stmtStart, s.stmtLine = true, s.pos, s.line
	}
	switch {
	case c == '\'':
		s.skipQuoted('\'', false)
	case (c == 'E' || c == 'e') && s.peek(1) == '\'':
		s.advance(1)
		s.skipQuoted('\'', true)
	case c == '"':
		s.skipQuoted('"', false)
	case c == '$':
		if tag, ok := s.dollarTag(); ok {
			s.skipDollarQuoted(tag)
		} else {
			s.advance(1) // a parameter ($1) or a lone $
		}
	case c == '(':
		s.parenDepth++
		s.advance(1)
	case c == ')':
		if s.parenDepth > 0 {
			s.parenDepth--
		}
		s.advance(1)
	case isIdentStart(c):
		s.word()
	case c >= '0' && c <= '9':
		for s.pos < len(s.src) && isIdentCont(s.src[s.pos]) {
			s.advance(1)
		}
	default:
		_, n := utf8.DecodeRuneInString(s.src[s.pos:])
		s.advance(n)
	}
}

// word consumes an identifier or keyword and applies psql's BEGIN/END rule.
func (s *scanner) word() {
	start := s.pos
	for s.pos < len(s.src) && isIdentCont(s.src[s.pos]) {
		s.advance(1)
	}
	w := strings.ToLower(s.src[start:s.pos])
	if len(s.words) < 4 {
		s.words = append(s.words, w)
	}
	if !s.routineBody() || s.parenDepth != 0 {
		return
	}
	switch w {
	case "begin":
		s.beginDepth++
	case "case":
		if s.beginDepth >= 1 {
			s.beginDepth++
		}
	case "end":
		if s.beginDepth > 0 {
			s.beginDepth--
		}
	}
}

// routineBody reports whether the statement so far reads
// CREATE [OR REPLACE] FUNCTION|PROCEDURE.
func (s *scanner) routineBody() bool {
	w := s.words
	routine := func(i int) bool { return len(w) > i && (w[i] == "function" || w[i] == "procedure") }
	if len(w) == 0 || w[0] != "create" {
		return false
	}
	return routine(1) || (len(w) > 2 && w[1] == "or" && w[2] == "replace" && routine(3))
}

func (s *scanner) end(at int) {
	if s.inStmt {
		s.out = append(s.out, Statement{SQL: strings.TrimRight(s.src[s.stmtStart:at], " \t\r\n\f\v"), Line: s.stmtLine})
	}
	s.inStmt, s.parenDepth, s.beginDepth, s.words = false, 0, 0, nil
}

// skipQuoted consumes a quoted string or identifier; a doubled quote stands
// for itself, and with backslashes (E”) a backslash escapes the next byte.
func (s *scanner) skipQuoted(q byte, backslashes bool) {
	s.advance(1)
	for s.pos < len(s.src) {
		switch c := s.src[s.pos]; {
		case backslashes && c == '\\' && s.pos+1 < len(s.src):
			s.advance(2)
		case c == q && s.peek(1) == q:
			s.advance(2)
		case c == q:
			s.advance(1)
			return
		default:
			s.advance(1)
		}
	}
}

// dollarTag reads a dollar-quote opener ($$ or $tag$) at s.pos. A `$` right
// after an identifier character is part of that identifier, so the caller
// never reaches here for one.
func (s *scanner) dollarTag() (string, bool) {
	i := s.pos + 1
	if i < len(s.src) && s.src[i] >= '0' && s.src[i] <= '9' {
		return "", false
	}
	for i < len(s.src) && s.src[i] != '$' && isIdentCont(s.src[i]) {
		i++
	}
	if i < len(s.src) && s.src[i] == '$' {
		return s.src[s.pos : i+1], true
	}
	return "", false
}

func (s *scanner) skipDollarQuoted(tag string) {
	s.advance(len(tag))
	if end := strings.Index(s.src[s.pos:], tag); end >= 0 {
		s.advance(end + len(tag))
		return
	}
	s.advance(len(s.src) - s.pos)
}

func (s *scanner) skipLineComment() {
	for s.pos < len(s.src) && s.src[s.pos] != '\n' {
		s.advance(1)
	}
}

// skipBlockComment consumes a /* */ comment; Postgres nests them.
func (s *scanner) skipBlockComment() {
	depth := 0
	for s.pos < len(s.src) {
		switch {
		case s.src[s.pos] == '/' && s.peek(1) == '*':
			depth++
			s.advance(2)
		case s.src[s.pos] == '*' && s.peek(1) == '/':
			depth--
			s.advance(2)
			if depth == 0 {
				return
			}
		default:
			s.advance(1)
		}
	}
}

func (s *scanner) peek(off int) byte {
	if s.pos+off < len(s.src) {
		return s.src[s.pos+off]
	}
	return 0
}

// advance moves n bytes on, counting the lines it passes.
func (s *scanner) advance(n int) {
	s.line += strings.Count(s.src[s.pos:s.pos+n], "\n")
	s.pos += n
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

// isIdentCont includes `$`: Postgres allows it inside identifiers (a$b).
func isIdentCont(c byte) bool {
	return isIdentStart(c) || (c >= '0' && c <= '9') || c == '$'
}
