package jobspec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wrap puts a task body into a minimal job so a case shows only what it
// is about. The task body starts on line 5, column 7 is its first column.
func wrap(taskBody string) string {
	return "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"busybox\" }\n" + taskBody + "\n    }\n  }\n}\n"
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		opts Options
		// want lists the expected problems, each "line:col: substring";
		// the file is always bad.hcl unless the entry names another.
		want []string
	}{
		{"syntax", "job \"j\" {\n  group \"g\" {\n    count = \n  }\n}\n", Options{},
			[]string{"3:13: Invalid expression"}},
		{"no job", "# nothing here\n", Options{}, []string{"1:1: no job block"}},
		{"two jobs", "job \"a\" {}\njob \"b\" {}\n", Options{}, []string{"2:1: a job file holds one job; the first is at line 1"}},
		{"unknown top-level", "jobb \"a\" {}\n", Options{}, []string{`1:1: unsupported block "jobb" in the job file; did you mean "job"?`}},
		{"job label missing", "job {\n}\n", Options{}, []string{"1:1: job block needs one label"}},
		{"unknown job attribute with hint", "job \"j\" {\n  datacenter = [\"dc1\"]\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`2:3: unsupported argument "datacenter" in job block; did you mean "datacenters"?`}},
		{"unknown update attribute with hint", "job \"j\" {\n  update {\n    max_paralel = 2\n  }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`3:5: unsupported argument "max_paralel" in update block; did you mean "max_parallel"?`}},
		{"unknown attribute without hint", wrap(`      colour = "blue"`), Options{},
			[]string{`5:7: unsupported argument "colour" in task block (expected one of:`}},
		{"unknown block with hint", wrap(`      resource { cpu = 1 }`), Options{},
			[]string{`5:7: unsupported block "resource" in task block; did you mean "resources"?`}},
		{"refused nomad block", wrap(`      template { data = "x" }`), Options{},
			[]string{`5:7: block "template" in task block is not supported by Hive: templates are not supported yet`}},
		{"block written as argument", "job \"j\" {\n  update = {}\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`2:3: "update" is a block, not an argument`}},
		{"argument written as block", "job \"j\" {\n  group \"g\" {\n    count { }\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`3:5: "count" is an argument, not a block`}},
		{"duplicate single block", wrap("      resources { cpu = 1 }\n      resources { cpu = 2 }"), Options{},
			[]string{"6:7: duplicate resources block in task block; the first is at line 5"}},
		{"type error", "job \"j\" {\n  priority = \"high\"\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{"2:14: priority: a number is required, got a string"}},
		{"priority out of range", "job \"j\" {\n  priority = 101\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{"2:14: priority must be at most 100, got 101"}},
		{"fractional count", "job \"j\" {\n  group \"g\" {\n    count = 1.5\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{"3:13: count must be a whole number, got 1.5"}},
		{"negative count", "job \"j\" {\n  group \"g\" {\n    count = -1\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{"3:13: count must be at least 0, got -1"}},
		{"bad job type", "job \"j\" {\n  type = \"system\"\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`2:10: job type "system" is not supported yet`}},
		{"bad duration", "job \"j\" {\n  update {\n    min_healthy_time = \"10 seconds\"\n  }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`3:24: min_healthy_time: invalid duration "10 seconds"`}},
		{"duration as number", wrap("      restart {\n        delay = 15\n      }"), Options{},
			[]string{`6:17: delay: a duration string like "30s" or "5m" is required, got a number`}},
		{"negative duration", wrap("      restart {\n        delay = \"-5s\"\n      }"), Options{},
			[]string{`6:17: delay cannot be negative`}},
		{"min healthy above deadline", "job \"j\" {\n  update {\n    min_healthy_time = \"10m\"\n    healthy_deadline = \"5m\"\n  }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{"3:24: min_healthy_time (10m0s) must be less than healthy_deadline (5m0s)"}},
		{"bad restart mode", wrap("      restart {\n        mode = \"never\"\n      }"), Options{},
			[]string{`6:16: restart mode "never": use "fail" or "delay"`}},
		{"bad delay function", "job \"j\" {\n  group \"g\" {\n    reschedule {\n      delay_function = \"linear\"\n    }\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`4:24: delay_function "linear"`}},
		{"bad operator", "job \"j\" {\n  constraint {\n    attribute = \"${attr.kernel.name}\"\n    operator  = \"~=\"\n    value     = \"linux\"\n  }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`4:17: constraint operator "~=" is not supported`}},
		{"bad regexp", "job \"j\" {\n  constraint {\n    attribute = \"${attr.kernel.name}\"\n    operator  = \"regexp\"\n    value     = \"lin(ux\"\n  }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`5:17: constraint value "lin(ux" is not a valid regexp`}},
		{"constraint without attribute", "job \"j\" {\n  constraint {\n    value = \"linux\"\n  }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`2:3: constraint needs an attribute`}},
		{"distinct_hosts mixed", "job \"j\" {\n  constraint {\n    attribute      = \"${node.unique.id}\"\n    distinct_hosts = true\n  }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`4:5: distinct_hosts stands alone`}},
		{"affinity weight zero", "job \"j\" {\n  affinity {\n    attribute = \"${node.datacenter}\"\n    value     = \"dc1\"\n    weight    = 0\n  }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`5:17: affinity weight cannot be 0`}},
		{"spread over 100 percent", "job \"j\" {\n  spread {\n    attribute = \"${node.datacenter}\"\n    target \"a\" { percent = 70 }\n    target \"b\" { percent = 40 }\n  }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`5:28: spread target percentages add up to 110, more than 100`}},
		{"unknown runtime root", wrap(`      user = "${nod.unique.id}"`), Options{},
			[]string{`5:17: Unknown variable`}},
		{"duplicate group", "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`7:9: duplicate group "g"; the first is at line 2`}},
		{"duplicate task", "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`6:10: duplicate task "t" in group "g"; the first is at line 3`}},
		{"missing image", "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config {\n        command = \"sh\"\n      }\n    }\n  }\n}\n", Options{},
			[]string{`4:7: task "t": config needs an image`}},
		{"missing config", "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"containerd\"\n    }\n  }\n}\n", Options{},
			[]string{`3:10: task "t" has no config block`}},
		{"memory below minimum", wrap("      resources {\n        memory = 2\n      }"), Options{},
			[]string{`6:18: memory must be at least 4 MiB, got 2`}},
		{"memory_max refused", wrap("      resources {\n        memory_max = 512\n      }"), Options{},
			[]string{`6:9: argument "memory_max" in resources block is not supported by Hive: memory is a hard limit`}},
		{"bad driver", wrap(`      driver = "exec"`), Options{},
			[]string{`5:16: driver "exec" is not supported: use "containerd"`}},
		{"invalid job name", "job \"My_Job\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`1:5: invalid job name "My_Job"`}},
		{"invalid group name", "job \"j\" {\n  group \"G\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`2:9: invalid group name "G"`}},
		{"invalid task name", "job \"j\" {\n  group \"g\" {\n    task \"web_1\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`3:10: invalid task name "web_1"`}},
		{"no groups", "job \"j\" {\n  type = \"batch\"\n}\n", Options{},
			[]string{`1:1: job "j" has no group`}},
		{"no tasks", "job \"j\" {\n  group \"g\" {\n    count = 2\n  }\n}\n", Options{},
			[]string{`2:9: group "g" has no task`}},
		{"undeclared port", "job \"j\" {\n  group \"g\" {\n    network {\n      port \"http\" { to = 80 }\n    }\n    task \"t\" {\n      config {\n        image = \"x\"\n        ports = [\"https\"]\n      }\n    }\n  }\n}\n", Options{},
			[]string{`9:17: port "https" is not declared`}},
		{"port out of range", "job \"j\" {\n  group \"g\" {\n    network {\n      port \"http\" { static = 70000 }\n    }\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`4:30: static must be at most 65535, got 70000`}},
		{"reserved label", wrap("      meta {\n        \"hive.alloc\" = \"x\"\n      }"), Options{},
			// hclsyntax refuses quoted names in a block before we do.
			[]string{`6:9: Invalid argument name`}},
		{"reserved label attribute", wrap("      meta = { \"hive.alloc\" = \"x\" }"), Options{},
			[]string{`5:7: meta key "hive.alloc": names starting with "hive." are reserved`}},
		{"security set twice", "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config {\n        image = \"x\"\n        privileged = true\n      }\n      security {\n        privileged = false\n      }\n    }\n  }\n}\n", Options{},
			[]string{`9:9: privileged is also set in the config block at line 6`}},
		{"bad capability", wrap("      security {\n        cap_add = [\"NET ADMIN\"]\n      }"), Options{},
			[]string{`6:19: cap_add: "NET ADMIN" is not a capability name`}},
		{"bad job label key", "job \"j\" {\n  labels = { \"a b\" = \"x\" }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`2:12: labels: invalid label key "a b"`}},
		{"bad group label value", "job \"j\" {\n  group \"g\" {\n    labels {\n      tier = \"-front\"\n    }\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`3:5: labels: label tier: invalid label value "-front"`}},
		{"reserved endpoint label", "job \"j\" {\n  labels = { \"hive.io/job\" = \"other\" }\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`2:12: labels: label key "hive.io/job": keys starting with "hive.io/" are set by Hive itself`}},
		{"labels not a map", "job \"j\" {\n  labels = [\"a\"]\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`2:12: labels: a map of strings is required`}},
		{"several problems in source order", "job \"j\" {\n  priority = 0\n  group \"g\" {\n    count = -2\n    task \"t\" {\n      config { image = \"x\" }\n      resources { memory = 1 }\n    }\n  }\n}\n", Options{},
			[]string{"2:14: priority must be at least 1", "4:13: count must be at least 0", "7:28: memory must be at least 4 MiB"}},

		// Secrets.
		{"secret without name and key", wrap("      secret \"db\" {\n        file = \"db.txt\"\n      }"), Options{},
			[]string{`5:7: secret "db" needs the name of a secret`, `5:7: secret "db" needs the key to deliver`}},
		{"secret delivers nothing", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n      }"), Options{},
			[]string{`5:7: secret "db" delivers nothing: set file`}},
		{"secret label missing", wrap("      secret {\n        name = \"db\"\n      }"), Options{},
			[]string{`5:7: secret block needs one label`}},
		{"secret bad label", wrap("      secret \"a b\" {\n        name = \"db\"\n        key  = \"k\"\n        env  = \"A\"\n      }"), Options{},
			[]string{`5:14: invalid secret label "a b"`}},
		{"secret bad name and key", wrap("      secret \"db\" {\n        name = \"DB/x\"\n        key  = \"a/b\"\n        env  = \"A\"\n      }"), Options{},
			[]string{`6:16: invalid secret name "DB/x"`, `7:16: invalid secret key "a/b"`}},
		{"secret file absolute", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \"/etc/passwd\"\n      }"), Options{},
			[]string{`8:16: file "/etc/passwd": must be relative to /run/secrets`}},
		{"secret file escapes", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \"a/../../x\"\n      }"), Options{},
			[]string{`8:16: file "a/../../x": cannot contain ".."`}},
		{"secret file not clean", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \"a//b/\"\n      }"), Options{},
			[]string{`8:16: file "a//b/": must be a clean path`}},
		{"secret file dot", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \".\"\n      }"), Options{},
			[]string{`8:16: file ".": must be a clean path`}},
		{"secret bad mode", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \"x\"\n        mode = \"rw\"\n      }"), Options{},
			[]string{`9:16: mode "rw" is not an octal file mode`}},
		{"secret setuid mode", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \"x\"\n        mode = \"4755\"\n      }"), Options{},
			[]string{`9:16: mode "4755": only permission bits`}},
		{"secret mode without file", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        env  = \"X\"\n        uid  = 5\n      }"), Options{},
			[]string{`9:9: uid applies to the secret's file`}},
		{"secret negative uid", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \"x\"\n        uid  = -1\n      }"), Options{},
			[]string{`9:16: uid must be at least 0, got -1`}},
		{"secret bad env name", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        env  = \"1DB-PASS\"\n      }"), Options{},
			[]string{`8:16: env "1DB-PASS" is not a valid environment variable name`}},
		{"secret env collides with task env", wrap("      env { DB = \"x\" }\n      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        env  = \"DB\"\n      }"), Options{},
			[]string{`9:16: env "DB" is also set in the task's env at line 5`}},
		{"secret bad change mode", wrap("      secret \"db\" {\n        name        = \"db\"\n        key         = \"k\"\n        env         = \"X\"\n        change_mode = \"reload\"\n      }"), Options{},
			[]string{`9:23: change_mode "reload": use "restart", "signal" or "noop"`}},
		{"secret signal without signal", wrap("      secret \"db\" {\n        name        = \"db\"\n        key         = \"k\"\n        env         = \"X\"\n        change_mode = \"signal\"\n      }"), Options{},
			[]string{`9:23: change_mode "signal" needs change_signal`}},
		{"secret signal with restart", wrap("      secret \"db\" {\n        name          = \"db\"\n        key           = \"k\"\n        env           = \"X\"\n        change_signal = \"SIGHUP\"\n      }"), Options{},
			[]string{`9:9: change_signal is used only with change_mode = "signal"`}},
		{"secret unknown signal", wrap("      secret \"db\" {\n        name          = \"db\"\n        key           = \"k\"\n        env           = \"X\"\n        change_mode   = \"signal\"\n        change_signal = \"SIGRELOAD\"\n      }"), Options{},
			[]string{`10:25: change_signal "SIGRELOAD" is not a signal name`}},
		{"secret unknown attribute", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        env  = \"X\"\n        fiel = \"x\"\n      }"), Options{},
			[]string{`9:9: unsupported argument "fiel" in secret block; did you mean "file"?`}},
		{"duplicate secret label", wrap("      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        env  = \"A\"\n      }\n      secret \"db\" {\n        name = \"db\"\n        key  = \"k\"\n        env  = \"B\"\n      }"), Options{},
			[]string{`10:14: duplicate secret "db"; the first is at line 5`}},
		{"duplicate secret file and env", wrap("      secret \"a\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \"x\"\n        env  = \"A\"\n      }\n      secret \"b\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \"x\"\n        env  = \"A\"\n      }"), Options{},
			[]string{`14:16: file "x" is also written by secret "a" at line 8`, `15:16: env "A" is also set by secret "a" at line 9`}},
		{"secret file under another", wrap("      secret \"a\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \"x\"\n      }\n      secret \"b\" {\n        name = \"db\"\n        key  = \"k\"\n        file = \"x/y\"\n      }"), Options{},
			[]string{`13:16: file "x/y" and the file "x" of secret "a" at line 8 cannot both exist`}},

		// Variables.
		{"missing required variable", "variable \"tag\" {\n  type = string\n}\njob \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x:${var.tag}\" }\n    }\n  }\n}\n", Options{},
			[]string{`1:1: variable "tag" is required: give it a value with -var tag=... or in a var file`}},
		{"undeclared variable reference", "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x:${var.tag}\" }\n    }\n  }\n}\n", Options{},
			[]string{`4:32: Unsupported attribute: This object does not have an attribute named "tag"`}},
		{"-var for undeclared variable", "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{Vars: map[string]string{"nope": "1"}},
			[]string{`-var nope: the job file declares no variable "nope"`}},
		{"-var of the wrong type", "variable \"n\" {\n  type = number\n}\njob \"j\" {\n  group \"g\" {\n    count = var.n\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{Vars: map[string]string{"n": "three"}},
			[]string{`-var n: "three" is not a valid number`}},
		{"default of the wrong type", "variable \"n\" {\n  type    = number\n  default = \"three\"\n}\njob \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`3:13: default for variable "n"`}},
		{"variable validation", "variable \"n\" {\n  type    = number\n  default = 50\n  validation {\n    condition     = var.n < 10\n    error_message = \"n must be below 10.\"\n  }\n}\njob \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`3:13: invalid value for variable "n": n must be below 10.`}},
		{"unknown variable attribute", "variable \"n\" {\n  typ = number\n}\njob \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			// The misspelt type is lost, and with no default the variable is
			// also required: both are true.
			[]string{`1:1: variable "n" is required`, `2:3: unsupported argument "typ" in variable block; did you mean "type"?`}},
		{"duplicate variable", "variable \"n\" {\n  default = 1\n}\nvariable \"n\" {\n  default = 2\n}\njob \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`4:10: variable "n" is declared twice; the first is at line 1`}},
		{"local cycle", "locals {\n  a = local.b\n  b = local.a\n}\njob \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`2:3: local "a" depends on itself`, `3:3: local "b" depends on itself`}},
		{"undefined local", "locals {\n  a = local.zz\n}\njob \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x\" }\n    }\n  }\n}\n", Options{},
			[]string{`2:7: there is no local named "zz"`}},
		{"function error", wrap(`      user = tonumber("abc")`), Options{},
			[]string{`5:24: Invalid function argument`}},
		{"unknown function", wrap(`      user = file("/etc/passwd")`), Options{},
			[]string{`5:14: Call to unknown function`}},
		{"format width bounded", wrap(`      user = format("%999999999d", 1)`), Options{},
			[]string{`5:22: Invalid function argument: Invalid value for "format" parameter: format widths and precisions are limited to 1000`}},
		{"runtime reference used as object", wrap(`      user = "${attr.a}${attr.a.b}"`), Options{},
			[]string{`5:17: Invalid template interpolation value`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job, err := Parse("bad.hcl", []byte(tc.src), tc.opts)
			if err == nil {
				t.Fatalf("no error; job %+v", job)
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			ps := perr.Problems()
			if len(ps) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(tc.want), err)
			}
			for i, want := range tc.want {
				got := ps[i].String()
				if !strings.HasPrefix(want, "-var") {
					want = "bad.hcl:" + want
				}
				prefix, sub, _ := strings.Cut(want, ": ")
				if !strings.HasPrefix(got, prefix+": ") || !strings.Contains(got, sub) {
					t.Errorf("problem %d:\n got  %s\n want %s", i, got, want)
				}
			}
			// Error() is the same problems, one a line.
			if lines := strings.Split(err.Error(), "\n"); len(lines) != len(ps) {
				t.Errorf("Error() has %d lines for %d problems", len(lines), len(ps))
			}
		})
	}
}

// TestVarFileErrors checks problems in var files carry the var file's
// position, and that a variable whose given value was wrong is not also
// reported as missing.
func TestVarFileErrors(t *testing.T) {
	dir := t.TempDir()
	vf := filepath.Join(dir, "prod.vars.hcl")
	if err := os.WriteFile(vf, []byte("tag = \"v1\"\ncuont = 3\ncount = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := "variable \"tag\" {}\nvariable \"count\" {\n  type = number\n}\njob \"j\" {\n  group \"g\" {\n    task \"t\" {\n      config { image = \"x:${var.tag}\" }\n    }\n  }\n}\n"
	_, err := Parse("job.hcl", []byte(src), Options{VarFiles: []string{vf}})
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("err = %v", err)
	}
	ps := perr.Problems()
	want := []Problem{
		{File: vf, Line: 2, Col: 1, Message: `the job file declares no variable "cuont"`},
		{File: vf, Line: 3, Col: 9, Message: `variable "count": a number is required`},
	}
	if len(ps) != len(want) {
		t.Fatalf("got %v", err)
	}
	for i, w := range want {
		p := ps[i]
		if p.File != w.File || p.Line != w.Line || p.Col != w.Col || !strings.Contains(p.Message, w.Message) {
			t.Errorf("problem %d: got %s, want %s", i, p, w)
		}
	}

	_, err = Parse("job.hcl", []byte(src), Options{VarFiles: []string{filepath.Join(dir, "missing.hcl")}})
	if err == nil || !strings.Contains(err.Error(), "missing.hcl") {
		t.Errorf("missing var file: err = %v", err)
	}
}

func TestWarnings(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "docker-ports.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	_, warns, err := ParseWithWarnings("docker-ports.hcl", src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`docker-ports.hcl:4:3: argument "region" in job block is ignored`,
		`docker-ports.hcl:17:5: block "service" in group block is ignored`,
		`docker-ports.hcl:51:7: block "logs" in task block is ignored`,
		`docker-ports.hcl:56:7: argument "kill_timeout" in task block is ignored`,
	}
	if len(warns) != len(want) {
		t.Fatalf("got %d warnings, want %d: %v", len(warns), len(want), warns)
	}
	for i, w := range want {
		if !strings.HasPrefix(warns[i].String(), w) {
			t.Errorf("warning %d:\n got  %s\n want %s", i, warns[i], w)
		}
	}
}

// TestDefaults pins Nomad's defaults and the inheritance of job-level
// blocks by groups and of group restart by tasks.
func TestDefaults(t *testing.T) {
	src := `
job "d" {
  update {
    canary       = 2
    auto_promote = true
  }
  group "a" {
    restart {
      attempts = 7
    }
    task "t1" {
      config { image = "x" }
    }
    task "t2" {
      config { image = "x" }
      restart { mode = "delay" }
    }
  }
  group "b" {
    update {
      max_parallel = 4
      auto_promote = false
    }
    task "t" {
      config { image = "x" }
    }
  }
}
`
	job, err := Parse("d.hcl", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if job.ID != "d" || job.Name != "d" || job.Namespace != "default" || job.Type != "service" || job.Priority != 50 {
		t.Errorf("job defaults: %+v", job)
	}
	if job.Update == nil || job.Update.Canary != 2 || !job.Update.AutoPromote || job.Update.MaxParallel != 1 || job.Update.MinHealthyTime.String() != "10s" {
		t.Errorf("job update: %+v", job.Update)
	}
	a, b := job.Groups[0], job.Groups[1]
	if a.Count != 1 || a.Update == nil || *a.Update != *job.Update {
		t.Errorf("group a: count %d update %+v", a.Count, a.Update)
	}
	if b.Update.MaxParallel != 4 || b.Update.Canary != 2 || b.Update.AutoPromote {
		t.Errorf("group b update %+v", b.Update)
	}
	if a.Update == job.Update || b.Update == job.Update {
		t.Error("groups share the job's update strategy instead of copying it")
	}
	if a.Restart.Attempts != 7 || a.Restart.Mode != "fail" || a.Tasks[0].Restart != *a.Restart {
		t.Errorf("restart inheritance: group %+v task %+v", a.Restart, a.Tasks[0].Restart)
	}
	if r := a.Tasks[1].Restart; r.Attempts != 7 || r.Mode != "delay" {
		t.Errorf("task restart override: %+v", r)
	}
	if r := a.Reschedule; !r.Unlimited || r.DelayFunction != "exponential" {
		t.Errorf("service reschedule default: %+v", r)
	}
	if res := a.Tasks[0].Resources; res.CPU != 100 || res.MemoryMB != 300 {
		t.Errorf("resources default: %+v", res)
	}

	batch, err := Parse("b.hcl", []byte(`job "b" {
  type = "batch"
  update { max_parallel = 2 }
  group "g" {
    task "t" {
      config { image = "x" }
    }
  }
}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if batch.Update != nil || batch.Groups[0].Update != nil {
		t.Error("batch job kept an update strategy")
	}
	if r := batch.Groups[0].Reschedule; r.Attempts != 1 || r.Unlimited || r.DelayFunction != "constant" {
		t.Errorf("batch reschedule default: %+v", r)
	}
}

func TestVarsPrecedence(t *testing.T) {
	dir := t.TempDir()
	f1 := filepath.Join(dir, "1.hcl")
	f2 := filepath.Join(dir, "2.hcl")
	os.WriteFile(f1, []byte("a = \"file1\"\nb = \"file1\"\nc = \"file1\"\n"), 0o644)
	os.WriteFile(f2, []byte("b = \"file2\"\nc = \"file2\"\n"), 0o644)
	src := `
variable "a" { default = "default" }
variable "b" { default = "default" }
variable "c" { default = "default" }
variable "d" { default = "default" }
variable "n" {
  type    = list(number)
  default = []
}
job "p" {
  meta = {
    a = var.a
    b = var.b
    c = var.c
    d = var.d
    n = jsonencode(var.n)
  }
  group "g" {
    task "t" {
      config { image = "x" }
    }
  }
}`
	job, err := Parse("p.hcl", []byte(src), Options{VarFiles: []string{f1, f2}, Vars: map[string]string{"c": "flag", "n": "[1, 2]"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "file1", "b": "file2", "c": "flag", "d": "default", "n": "[1,2]"}
	for k, v := range want {
		if job.Meta[k] != v {
			t.Errorf("meta %s = %q, want %q", k, job.Meta[k], v)
		}
	}
}

func TestFilenameOption(t *testing.T) {
	_, err := Parse("", []byte("job {}\n"), Options{Filename: "from-api.hcl"})
	if err == nil || !strings.HasPrefix(err.Error(), "from-api.hcl:1:1: ") {
		t.Errorf("err = %v", err)
	}
	_, err = Parse("", []byte("job {}\n"), Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "job.hcl:1:1: ") {
		t.Errorf("err = %v", err)
	}
}
