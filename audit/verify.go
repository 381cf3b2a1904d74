package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// Result describes a chain that verified.
type Result struct {
	Files   int // files read
	Entries int // lines verified, file-start and chain-restart entries included
	// Start is the prev of the first entry: Genesis, or, when MidChain, the
	// hash of an entry in a file that is no longer there.
	Start string
	// MidChain reports that the first file does not begin the chain: older
	// files were removed by retention (or the log restarted). Verify
	// accepts that only when the first entry is a file-start or
	// chain-restart entry, which the Writer puts at the top of every file.
	MidChain bool
	// Head is the hash of the last entry. The chain cannot show lines cut
	// from the end of the newest file; comparing Head (or the hash of an
	// entry known to exist) with a copy kept elsewhere can.
	Head string
}

// BrokenLinkError says where the chain first breaks. Line is 1-based.
type BrokenLinkError struct {
	File   string
	Line   int
	Reason string
}

// Error gives the position as file:line, like a compiler.
func (e *BrokenLinkError) Error() string {
	return fmt.Sprintf("audit: chain broken at %s:%d: %s", e.File, e.Line, e.Reason)
}

// Verify checks the hash chain through files, given in chain order (see
// Files). It returns a *BrokenLinkError for the first line that fails, and
// other errors when a file cannot be read. On a live log the Writer may be
// in the middle of appending, which can show as a last line without its
// newline; verify again, or verify the rotated files.
func Verify(files ...string) (Result, error) {
	var res Result
	if len(files) == 0 {
		return res, errors.New("audit: verify: no files given")
	}
	prev := ""   // hash of the last good entry; "" before the first
	prevAt := "" // "file:line" of that entry, for messages
	for _, name := range files {
		err := verifyFile(name, &res, &prev, &prevAt)
		if err != nil {
			return res, err
		}
		res.Files++
	}
	res.Head = prev
	return res, nil
}

func verifyFile(name string, res *Result, prev, prevAt *string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(r, maxLineSize)
		broken := func(reason string) error {
			return &BrokenLinkError{File: name, Line: n, Reason: reason}
		}
		switch {
		case err == io.EOF && len(line) == 0:
			return nil
		case err == io.EOF:
			return broken("the last line has no newline: the file was truncated or a write was cut short")
		case errors.Is(err, errLineTooLong):
			return broken(err.Error())
		case err != nil:
			return fmt.Errorf("audit: verify: %s: %w", name, err)
		}
		info, problem := checkLine(line[:len(line)-1])
		if problem != "" {
			return broken(problem)
		}
		if reason := linkProblem(info, *prev, *prevAt, n == 1); reason != "" {
			return broken(reason)
		}
		if *prev == "" {
			res.Start = info.Prev
			res.MidChain = info.Prev != Genesis
		}
		*prev = info.Hash
		*prevAt = fmt.Sprintf("%s:%d", name, n)
		res.Entries++
	}
}

// linkProblem checks that info follows the entry whose hash is prev ("" at
// the very first entry) and says why not.
func linkProblem(info lineInfo, prev, prevAt string, firstInFile bool) string {
	if prev == "" {
		if info.Prev == Genesis || info.Event == EventFileStart || info.Event == EventChainRestart {
			return ""
		}
		return fmt.Sprintf("the first entry continues a chain (its prev is not the genesis hash) but is not a %s entry: entries before it were removed", EventFileStart)
	}
	if info.Prev == prev {
		return ""
	}
	reason := fmt.Sprintf("prev %.12s... does not match the hash %.12s... of the entry before it (%s): ", info.Prev, prev, prevAt)
	if firstInFile {
		reason += "a file between them is missing, was truncated, or they are out of order"
	} else {
		reason += "an entry was removed, inserted or moved"
	}
	if info.Event == EventChainRestart {
		reason += "; this entry restarted the chain: " + info.Reason
	}
	return reason
}

var errLineTooLong = fmt.Errorf("line is longer than %d bytes", maxLineSize)

// readLine returns the next line including its newline. At the end of the
// input it returns what is left (possibly a partial line) with io.EOF.
// Lines longer than limit give errLineTooLong rather than exhausting
// memory on a corrupt or hostile file.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > limit {
			return nil, errLineTooLong
		}
		if err == nil && line == nil {
			// The common case: the whole line was in the buffer. Copy,
			// because the next read overwrites it.
			return append([]byte(nil), frag...), nil
		}
		line = append(line, frag...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}
