// Package jobspec turns job files into structs.Job. The format is Nomad's
// HCL2 jobspec, so that Nomad job files for containers run on Hive with
// little or no change, plus Hive's own security block. Parsing is pure: it
// reads only the files it is given, and every problem it finds comes back
// at once, each as "file:line:col: message".
package jobspec

import (
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/hivesec/hive/structs"
)

// Options are the inputs of a job file besides its text.
type Options struct {
	// Vars set variables, as -var name=value does: the text is the value
	// for string (and untyped) variables, and HCL for the others
	// (-var 'dcs=["a","b"]').
	Vars map[string]string
	// VarFiles are files of name = value lines, as -var-file reads;
	// later files win, and Vars win over all of them.
	VarFiles []string
	// Filename names the source in messages when Parse is given none.
	Filename string
}

// Parse decodes one job file. On failure the error is an *Error listing
// every problem found.
func Parse(filename string, src []byte, opts Options) (*structs.Job, error) {
	job, _, err := ParseWithWarnings(filename, src, opts)
	return job, err
}

// ParseFile reads and decodes the job file at path.
func ParseFile(path string, opts Options) (*structs.Job, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jobspec: %w", err)
	}
	return Parse(path, src, opts)
}

// ParseWithWarnings is Parse that also returns warnings: Nomad settings
// Hive accepts but ignores because they cannot change what runs (a
// service block, say). The CLI shows them; nothing fails because of them.
func ParseWithWarnings(filename string, src []byte, opts Options) (*structs.Job, []Problem, error) {
	if filename == "" {
		filename = opts.Filename
	}
	if filename == "" {
		filename = "job.hcl"
	}
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		sortDiags(diags)
		return nil, nil, &Error{Diags: diags}
	}
	d := &decoder{ctx: &hcl.EvalContext{Functions: functions()}}
	job := d.file(f.Body.(*hclsyntax.Body), opts)
	sortDiags(d.warns)
	warns := problems(d.warns)
	if d.diags.HasErrors() {
		sortDiags(d.diags)
		return nil, warns, &Error{Diags: d.diags}
	}
	return job, warns, nil
}

var fileSchema = &schema{
	name:   "the job file",
	blocks: map[string]int{"job": 1, "variable": 1, "locals": 0},
	multi:  []string{"job", "variable", "locals"},
	refused: map[string]string{
		"variables": "declare each with a variable \"name\" { ... } block",
	},
}

// file decodes the top level: variables, locals, then the one job.
func (d *decoder) file(body *hclsyntax.Body, opts Options) *structs.Job {
	c := d.content(body, fileSchema)
	vars := d.variables(c.blocks["variable"], opts)
	d.ctx.Variables = map[string]cty.Value{"var": cty.ObjectVal(vars)}
	d.ctx.Variables["local"] = cty.ObjectVal(d.locals(c.blocks["locals"]))
	if d.diags.HasErrors() {
		// A variable without a value would make every use of it a second,
		// misleading error; report the variables alone.
		return nil
	}
	jobs := c.blocks["job"]
	switch len(jobs) {
	case 0:
		d.errorf(body.SrcRange, "no job block: a job file holds one job \"name\" { ... }")
		return nil
	case 1:
	default:
		d.errorf(jobs[1].TypeRange, "a job file holds one job; the first is at line %d", jobs[0].TypeRange.Start.Line)
		return nil
	}
	return d.job(jobs[0])
}
