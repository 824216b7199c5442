package customize

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds the lenient readers ReadArmed uses for the files that
// arm a first boot: a YAML subset (cloud-init user-data and
// network-config), a TOML subset (custom.toml) and POSIX shell words
// (firstrun.sh). They read untrusted text: every loop is bounded by the
// input, nesting and node counts are capped, and what they do not
// understand comes back as a plain string or nil, never as a guess.

// Limits of the YAML reader.
const (
	yamlMaxDepth = 24
	yamlMaxNodes = 20000
)

// parseYAML reads the block-style YAML that cloud-init files use:
// mappings, sequences, plain, single- and double-quoted scalars, block
// scalars (| and >) and one-line flow collections. Scalars stay strings
// (see yBool). Anchors, aliases, tags, multi-line flow collections and
// complex keys are not resolved: their values read as raw strings or nil.
func parseYAML(s string) any {
	p := &yparser{lines: strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")}
	// Skip directives and the document start marker.
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		t := strings.TrimSpace(stripYAMLComment(l))
		if t == "" || strings.HasPrefix(l, "%") || t == "---" && strings.HasPrefix(l, "---") {
			p.i++
			continue
		}
		if strings.HasPrefix(l, "--- ") {
			p.i++
			return p.value(strings.TrimSpace(t[3:]), -1, 0, false)
		}
		break
	}
	ind, _, ok := p.peek()
	if !ok {
		return nil
	}
	return p.block(ind, 0)
}

type yparser struct {
	lines []string
	i     int
	nodes int
}

// peek returns the indentation and comment-free text of the next line
// holding something, without consuming it; ok is false at the end (or at
// a document end marker).
func (p *yparser) peek() (indent int, text string, ok bool) {
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		t := strings.TrimLeft(l, " ")
		text = stripYAMLComment(t)
		if strings.TrimSpace(text) == "" {
			p.i++
			continue
		}
		if len(t) == len(l) && (text == "..." || text == "---") {
			return 0, "", false
		}
		return len(l) - len(t), strings.TrimRight(text, " \t"), true
	}
	return 0, "", false
}

// skipDeeper consumes the lines indented more than ind.
func (p *yparser) skipDeeper(ind int) {
	for {
		i2, _, ok := p.peek()
		if !ok || i2 <= ind {
			return
		}
		p.i++
	}
}

func (p *yparser) count() bool {
	p.nodes++
	return p.nodes <= yamlMaxNodes
}

// block reads the node that starts on the next line, at indentation ind.
func (p *yparser) block(ind, depth int) any {
	i2, text, ok := p.peek()
	if !ok || i2 < ind {
		return nil
	}
	if depth > yamlMaxDepth || !p.count() {
		p.skipDeeper(ind - 1)
		return nil
	}
	if isSeqItem(text) {
		return p.seq(i2, depth)
	}
	if _, _, isKey := splitKey(text); isKey {
		return p.mapping(i2, depth, map[string]any{})
	}
	if text[0] == '[' || text[0] == '{' {
		p.i++
		if n, ok := parseFlow(text, depth); ok {
			return n
		}
		p.skipDeeper(ind - 1)
		return nil
	}
	// A plain scalar, perhaps over several lines.
	p.i++
	parts := []string{text}
	for {
		i3, more, ok := p.peek()
		if !ok || i3 < ind || isSeqItem(more) {
			break
		}
		if _, _, isKey := splitKey(more); isKey {
			break
		}
		p.i++
		parts = append(parts, more)
	}
	return yScalar(strings.Join(parts, " "))
}

// mapping reads key: value lines at indentation ind into m.
func (p *yparser) mapping(ind, depth int, m map[string]any) map[string]any {
	for {
		i2, text, ok := p.peek()
		if !ok || i2 < ind {
			return m
		}
		if i2 > ind { // stray deeper line: not ours to read
			p.i++
			continue
		}
		k, v, isKey := splitKey(text)
		if !isKey || !p.count() {
			return m
		}
		p.i++
		m[k] = p.value(v, ind, depth+1, false)
	}
}

// seq reads "- item" lines at indentation ind.
func (p *yparser) seq(ind, depth int) []any {
	out := []any{}
	for {
		i2, text, ok := p.peek()
		if !ok || i2 < ind {
			return out
		}
		if i2 > ind {
			p.i++
			continue
		}
		if !isSeqItem(text) || !p.count() {
			return out
		}
		p.i++
		rest := strings.TrimLeft(text[1:], " ")
		col := ind + len(text) - len(rest)
		switch k, v, isKey := splitKey(rest); {
		case rest == "":
			out = append(out, p.value("", ind, depth+1, true))
		case isSeqItem(rest):
			out = append(out, yScalar(rest)) // "- - x": not read
		case isKey:
			m := map[string]any{k: p.value(v, col, depth+1, false)}
			out = append(out, p.mapping(col, depth+1, m))
		default:
			out = append(out, p.value(rest, ind, depth+1, true))
		}
	}
}

// value reads what follows "key:" or "- " on a line at indentation ind.
func (p *yparser) value(v string, ind, depth int, inSeq bool) any {
	switch {
	case v == "":
		i2, text, ok := p.peek()
		if ok && (i2 > ind || i2 == ind && !inSeq && isSeqItem(text)) {
			return p.block(i2, depth)
		}
		return nil
	case isBlockScalarHeader(v):
		return p.blockScalar(ind, v[0] == '>')
	case v[0] == '[' || v[0] == '{':
		if n, ok := parseFlow(v, 0); ok {
			return n
		}
		// A flow collection over several lines: not read.
		p.skipDeeper(ind)
		return v
	case v[0] == '&' || v[0] == '!':
		// An anchor or tag before the value: drop it, read the rest.
		_, rest, _ := strings.Cut(v, " ")
		return p.value(strings.TrimSpace(rest), ind, depth, inSeq)
	}
	return yScalar(v)
}

func isBlockScalarHeader(v string) bool {
	if v == "" || v[0] != '|' && v[0] != '>' {
		return false
	}
	for _, c := range v[1:] {
		if c != '+' && c != '-' && (c < '1' || c > '9') {
			return false
		}
	}
	return true
}

// blockScalar reads the lines indented more than ind, raw (comments are
// content there).
func (p *yparser) blockScalar(ind int, folded bool) string {
	var lines []string
	base := -1
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		t := strings.TrimLeft(l, " ")
		if t == "" {
			lines = append(lines, "")
			p.i++
			continue
		}
		n := len(l) - len(t)
		if n <= ind {
			break
		}
		if base < 0 {
			base = n
		}
		if n < base {
			n = base
		}
		lines = append(lines, l[min(base, len(l)-len(t)):])
		p.i++
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	sep := "\n"
	if folded {
		sep = " "
	}
	return strings.Join(lines, sep)
}

func isSeqItem(text string) bool {
	return text == "-" || strings.HasPrefix(text, "- ") || strings.HasPrefix(text, "-\t")
}

// splitKey splits "key: value" (the key plain or quoted); isKey is false
// when the text is not a mapping entry.
func splitKey(text string) (key, value string, isKey bool) {
	if text == "" || text[0] == '[' || text[0] == '{' || text[0] == '-' && isSeqItem(text) || text[0] == '?' {
		return "", "", false
	}
	if text[0] == '"' || text[0] == '\'' {
		end := quoteEnd(text, 0)
		if end < 0 {
			return "", "", false
		}
		rest := strings.TrimLeft(text[end:], " \t")
		if rest == ":" || strings.HasPrefix(rest, ": ") || strings.HasPrefix(rest, ":\t") {
			return yScalar(text[:end]).(string), strings.TrimSpace(rest[1:]), true
		}
		return "", "", false
	}
	for i := 0; i < len(text); i++ {
		if text[i] == ':' && (i+1 == len(text) || text[i+1] == ' ' || text[i+1] == '\t') {
			return strings.TrimSpace(text[:i]), strings.TrimSpace(text[i+1:]), true
		}
	}
	return "", "", false
}

// quoteEnd returns the index just past the quoted scalar starting at
// s[i], or -1 when it is not closed on this line.
func quoteEnd(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case q == '"' && s[j] == '\\':
			j++
		case s[j] == q:
			if q == '\'' && j+1 < len(s) && s[j+1] == '\'' {
				j++
				continue
			}
			return j + 1
		}
	}
	return -1
}

// stripYAMLComment removes a trailing "# comment" that is outside quotes.
func stripYAMLComment(l string) string {
	start := true
	for i := 0; i < len(l); i++ {
		c := l[i]
		if start && (c == '"' || c == '\'') {
			if e := quoteEnd(l, i); e > 0 {
				i = e - 1
				start = false
				continue
			}
			return l
		}
		if c == '#' && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t') {
			return l[:i]
		}
		start = c == ' ' || c == '\t' || c == '[' || c == '{' || c == ','
	}
	return l
}

// yScalar reads one scalar: quoted forms are unquoted, plain ones trimmed;
// an alias reads as nil.
func yScalar(v string) any {
	v = strings.TrimSpace(v)
	if v == "" || v == "~" || v == "null" || v == "Null" || v == "NULL" || v[0] == '*' {
		return nil
	}
	switch v[0] {
	case '"':
		if e := quoteEnd(v, 0); e == len(v) {
			return unescapeDouble(v[1 : e-1])
		}
	case '\'':
		if e := quoteEnd(v, 0); e == len(v) {
			return strings.ReplaceAll(v[1:e-1], "''", "'")
		}
	}
	return v
}

// unescapeDouble decodes the escapes of a YAML double-quoted scalar.
func unescapeDouble(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '0':
			b.WriteByte(0)
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+1+n <= len(s) {
				if v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32); err == nil && utf8.ValidRune(rune(v)) {
					b.WriteRune(rune(v))
					i += n
					continue
				}
			}
			b.WriteByte(e)
		default: // \" \\ \/ and the rest: the character itself
			b.WriteByte(e)
		}
	}
	return b.String()
}

// parseFlow reads a one-line flow collection starting at v[0] ('[' or
// '{'); ok is false when it is not closed on the line.
func parseFlow(v string, depth int) (any, bool) {
	if depth > yamlMaxDepth {
		return nil, false
	}
	open, close := v[0], byte(']')
	if open == '{' {
		close = '}'
	}
	var items []string
	level, start := 0, 1
	end := -1
	for i := 0; i < len(v) && end < 0; i++ {
		switch c := v[i]; {
		case c == '"' || c == '\'':
			e := quoteEnd(v, i)
			if e < 0 {
				return nil, false
			}
			i = e - 1
		case c == '[' || c == '{':
			level++
		case c == ']' || c == '}':
			level--
			if level == 0 {
				if c != close {
					return nil, false
				}
				items = append(items, v[start:i])
				end = i
			}
		case c == ',' && level == 1:
			items = append(items, v[start:i])
			start = i + 1
		}
	}
	if end < 0 || strings.TrimSpace(v[end+1:]) != "" {
		return nil, false
	}
	if open == '[' {
		out := []any{}
		for _, it := range items {
			it = strings.TrimSpace(it)
			if it == "" {
				continue
			}
			if it[0] == '[' || it[0] == '{' {
				n, ok := parseFlow(it, depth+1)
				if !ok {
					return nil, false
				}
				out = append(out, n)
				continue
			}
			out = append(out, yScalar(it))
		}
		return out, true
	}
	m := map[string]any{}
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		k, val, ok := splitKey(it)
		if !ok {
			m[it] = nil
			continue
		}
		if val != "" && (val[0] == '[' || val[0] == '{') {
			n, ok := parseFlow(val, depth+1)
			if !ok {
				return nil, false
			}
			m[k] = n
			continue
		}
		m[k] = yScalar(val)
	}
	return m, true
}

// YAML accessors: each tolerates any shape.

func yMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func yList(v any) []any { l, _ := v.([]any); return l }

func yStr(v any) string { s, _ := v.(string); return s }

// yBool reads YAML 1.1 booleans as cloud-init does (true/false, yes/no,
// on/off in any case); ok is false for anything else.
func yBool(v any) (val, ok bool) {
	switch strings.ToLower(yStr(v)) {
	case "true", "yes", "on", "y":
		return true, true
	case "false", "no", "off", "n":
		return false, true
	}
	return false, false
}

// parseTOML reads the TOML subset custom.toml uses: [table] headers and
// key = value with strings, booleans, numbers and arrays of strings (over
// several lines too). Keys come back as "table.key"; values as string,
// bool or []string; anything else as its raw text.
func parseTOML(s string) map[string]any {
	out := map[string]any{}
	table := ""
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(stripTOMLComment(lines[i]))
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			table = strings.Trim(strings.TrimSpace(strings.Trim(l, "[]")), `"`)
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), `"'`)
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, `"""`) || strings.HasPrefix(v, `'''`) {
			// A multi-line string: skip to its end, read it raw.
			q := v[:3]
			body := []string{v[3:]}
			for !strings.Contains(body[len(body)-1], q) && i+1 < len(lines) {
				i++
				body = append(body, lines[i])
			}
			text, _, _ := strings.Cut(strings.Join(body, "\n"), q)
			out[tomlKey(table, k)] = strings.TrimPrefix(text, "\n")
			continue
		}
		if strings.HasPrefix(v, "[") {
			parts := []string{v}
			level := tomlBrackets(v, 0)
			for level > 0 && i+1 < len(lines) {
				i++
				l := strings.TrimSpace(stripTOMLComment(lines[i]))
				parts = append(parts, l)
				level = tomlBrackets(l, level)
			}
			out[tomlKey(table, k)] = tomlArray(strings.Join(parts, " "))
			continue
		}
		out[tomlKey(table, k)] = tomlValue(v)
	}
	return out
}

func tomlKey(table, k string) string {
	if table == "" {
		return k
	}
	return table + "." + k
}

func tomlValue(v string) any {
	switch {
	case v == "true":
		return true
	case v == "false":
		return false
	case strings.HasPrefix(v, `"`):
		if e := quoteEnd(v, 0); e > 0 {
			return unescapeDouble(v[1 : e-1])
		}
	case strings.HasPrefix(v, `'`):
		if e := strings.IndexByte(v[1:], '\''); e >= 0 {
			return v[1 : e+1]
		}
	}
	return v
}

// tomlBrackets returns the bracket nesting after v, starting at level.
func tomlBrackets(v string, level int) int {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"', '\'':
			if e := quoteEnd(v, i); e > 0 {
				i = e - 1
			}
		case '[':
			level++
		case ']':
			level--
			if level <= 0 {
				return 0
			}
		}
	}
	return level
}

// tomlArray reads a flat array of strings; other elements keep their text.
func tomlArray(v string) []string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "[")
	if i := strings.LastIndexByte(v, ']'); i >= 0 {
		v = v[:i]
	}
	var out []string
	for len(v) > 0 {
		v = strings.TrimLeft(v, " \t,")
		if v == "" {
			break
		}
		var item string
		if v[0] == '"' || v[0] == '\'' {
			e := quoteEnd(v, 0)
			if e < 0 {
				e = len(v)
			}
			item, v = v[:e], v[e:]
		} else {
			item, v, _ = strings.Cut(v, ",")
		}
		if s, ok := tomlValue(strings.TrimSpace(item)).(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func stripTOMLComment(l string) string {
	for i := 0; i < len(l); i++ {
		switch l[i] {
		case '"', '\'':
			if e := quoteEnd(l, i); e > 0 {
				i = e - 1
			} else {
				return l
			}
		case '#':
			return l[:i]
		}
	}
	return l
}

// shellWords splits a line of POSIX shell into words: quotes and
// backslashes are removed, an unquoted # starts a comment, and the
// operators ( ) < > | ; & are words of their own. $(…) and `…` stay as
// text; variables are not expanded.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !inWord:
			return words
		case strings.IndexByte("()<>|;&", c) >= 0:
			flush()
			words = append(words, string(c))
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				j = len(line) - i - 1
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(line[i])
			}
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words
}
