package jobspec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Problem is one error or warning in a job file, with the position it
// refers to. Line and Col are 1-based; both are 0 when the problem has no
// place in a file (a -var given on the command line, say).
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Message)
	case p.File != "":
		return p.File + ": " + p.Message
	}
	return p.Message
}

// Error is what Parse returns when a job file is wrong. It keeps the HCL
// diagnostics so callers (the API, the CLI) can show positions, and its
// Error text lists every problem as "file:line:col: message", one a line.
type Error struct {
	Diags hcl.Diagnostics
}

func (e *Error) Error() string {
	ps := e.Problems()
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Problems returns the errors in Diags as positioned problems.
func (e *Error) Problems() []Problem {
	var ps []Problem
	for _, d := range e.Diags {
		if d.Severity == hcl.DiagError {
			ps = append(ps, problem(d))
		}
	}
	return ps
}

func problem(d *hcl.Diagnostic) Problem {
	msg := d.Summary
	// hcl's own diagnostics (syntax errors, function failures) put the
	// useful part in Detail; ours put everything in Summary.
	if d.Detail != "" {
		msg += ": " + d.Detail
	}
	p := Problem{Message: msg}
	if d.Subject != nil {
		p.File = d.Subject.Filename
		p.Line = d.Subject.Start.Line
		p.Col = d.Subject.Start.Column
	}
	return p
}

func problems(diags hcl.Diagnostics) []Problem {
	var ps []Problem
	for _, d := range diags {
		ps = append(ps, problem(d))
	}
	return ps
}

// sortDiags orders diagnostics by position within each file, files in the
// order they were first reported (var files before the job file), so that
// the output is stable whatever order the decoder found them in.
// Diagnostics without a position come first.
func sortDiags(diags hcl.Diagnostics) {
	rank := map[string]int{}
	for _, d := range diags {
		if d.Subject != nil {
			if _, ok := rank[d.Subject.Filename]; !ok {
				rank[d.Subject.Filename] = len(rank)
			}
		}
	}
	key := func(d *hcl.Diagnostic) (int, int) {
		if d.Subject == nil {
			return -1, 0
		}
		return rank[d.Subject.Filename], d.Subject.Start.Byte
	}
	sort.SliceStable(diags, func(i, j int) bool {
		fi, bi := key(diags[i])
		fj, bj := key(diags[j])
		if fi != fj {
			return fi < fj
		}
		return bi < bj
	})
}

// suggest returns the candidate closest to name if it is within an edit
// distance of 2, or "".
func suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes
// (names here are ASCII identifiers).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Far too long to be a typo of a keyword; don't spend time.
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
