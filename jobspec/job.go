package jobspec

import (
	"math"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hivesec/hive/structs"
)

var jobSchema = &schema{
	name:  "job block",
	attrs: []string{"name", "namespace", "type", "priority", "datacenters", "node_pool"},
	maps:  []string{"meta", "labels"},
	blocks: map[string]int{"group": 1, "constraint": 0, "affinity": 0, "spread": 0,
		"update": 0, "reschedule": 0},
	multi: []string{"group", "constraint", "affinity", "spread"},
	ignored: map[string]string{
		"region":       "a Hive cluster is one region",
		"all_at_once":  "Hive places a job's allocations in as few plans as it can anyway",
		"migrate":      "drains move allocations as the update block's max_parallel allows",
		"ui":           "Hive has no web UI",
		"consul_token": "Hive does not use Consul",
	},
	refused: map[string]string{
		"periodic":      "periodic jobs are not supported yet",
		"parameterized": "dispatched jobs are not supported yet",
		"multiregion":   "a Hive cluster is one region",
		"vault":         "use Hive secrets instead of Vault",
		"vault_token":   "use Hive secrets instead of Vault",
		"restart":       "set restart in a group or task",
	},
}

func (d *decoder) job(b *hclsyntax.Block) *structs.Job {
	id := b.Labels[0]
	job := &structs.Job{
		ID:        id,
		Name:      id,
		Namespace: structs.DefaultNamespace,
		Type:      structs.JobTypeService,
		Priority:  50,
	}
	if err := structs.ValidateName("job", id); err != nil {
		d.errorf(b.LabelRanges[0], "%v", err)
	}
	c := d.content(b.Body, jobSchema)
	if a := c.attrs["name"]; a != nil && d.str(a, &job.Name) && strings.TrimSpace(job.Name) == "" {
		d.errorf(a.Expr.Range(), "name cannot be empty")
	}
	if a := c.attrs["namespace"]; a != nil && d.str(a, &job.Namespace) {
		if err := structs.ValidateName("namespace", job.Namespace); err != nil {
			d.errorf(a.Expr.Range(), "%v", err)
		}
	}
	if a := c.attrs["type"]; a != nil && d.str(a, &job.Type) {
		switch job.Type {
		case structs.JobTypeService, structs.JobTypeBatch:
		case "system", "sysbatch":
			d.errorf(a.Expr.Range(), "job type %q is not supported yet: use \"service\" or \"batch\"", job.Type)
		default:
			d.errorf(a.Expr.Range(), "unknown job type %q: use \"service\" or \"batch\"", job.Type)
		}
	}
	d.integer(c.attrs["priority"], 1, 100, &job.Priority)
	if a := c.attrs["datacenters"]; a != nil && d.strings(a, &job.Datacenters) {
		for _, dc := range job.Datacenters {
			if strings.TrimSpace(dc) == "" {
				d.errorf(a.Expr.Range(), "datacenters cannot hold an empty name")
				break
			}
		}
	}
	d.str(c.attrs["node_pool"], &job.NodePool)
	job.Meta = d.stringMap(c, "meta")
	job.Labels = d.endpointLabels(c)
	for _, cb := range c.blocks["constraint"] {
		if con := d.constraint(cb); con != nil {
			job.Constraints = append(job.Constraints, con)
		}
	}
	for _, ab := range c.blocks["affinity"] {
		if aff := d.affinity(ab); aff != nil {
			job.Affinities = append(job.Affinities, aff)
		}
	}
	for _, sb := range c.blocks["spread"] {
		if sp := d.spread(sb); sp != nil {
			job.Spreads = append(job.Spreads, sp)
		}
	}
	if ub := c.block("update"); ub != nil {
		if job.Type == structs.JobTypeBatch {
			d.warnf(ub.TypeRange, "update block is ignored: batch jobs are not updated in place, as in Nomad")
		} else {
			job.Update = d.update(ub, structs.DefaultUpdateStrategy())
		}
	}
	resched := defaultReschedule(job.Type)
	if rb := c.block("reschedule"); rb != nil {
		resched = d.reschedule(rb, resched)
	}

	groups := c.blocks["group"]
	if len(groups) == 0 {
		d.errorf(b.TypeRange, "job %q has no group: add group \"name\" { task \"name\" { ... } }", id)
	}
	seen := map[string]*hclsyntax.Block{}
	for _, gb := range groups {
		name := gb.Labels[0]
		if prev := seen[name]; prev != nil {
			d.errorf(gb.LabelRanges[0], "duplicate group %q; the first is at line %d", name, prev.TypeRange.Start.Line)
			continue
		}
		seen[name] = gb
		if g := d.group(gb, job, resched); g != nil {
			job.Groups = append(job.Groups, g)
		}
	}
	return job
}

func defaultReschedule(jobType string) *structs.ReschedulePolicy {
	if jobType == structs.JobTypeBatch {
		return structs.DefaultBatchReschedulePolicy()
	}
	return structs.DefaultServiceReschedulePolicy()
}

var groupSchema = &schema{
	name:  "group block",
	attrs: []string{"count"},
	maps:  []string{"meta", "labels"},
	blocks: map[string]int{"task": 1, "constraint": 0, "affinity": 0, "spread": 0,
		"update": 0, "restart": 0, "reschedule": 0, "network": 0},
	multi: []string{"task", "constraint", "affinity", "spread"},
	ignored: map[string]string{
		"service":        "Hive has no service discovery yet",
		"ephemeral_disk": "tasks write to their container's own layer",
		"migrate":        "drains move allocations as the update block's max_parallel allows",
		"shutdown_delay": "Hive has no service registrations to remove first",
	},
	refused: map[string]string{
		"volume":                       "host and CSI volumes are not supported yet",
		"scaling":                      "autoscaling is not supported; set count",
		"vault":                        "use Hive secrets instead of Vault",
		"consul":                       "Hive does not use Consul",
		"disconnect":                   "Hive decides lost allocations itself",
		"max_client_disconnect":        "Hive decides lost allocations itself",
		"stop_after_client_disconnect": "Hive decides lost allocations itself",
	},
}

func (d *decoder) group(b *hclsyntax.Block, job *structs.Job, resched *structs.ReschedulePolicy) *structs.TaskGroup {
	name := b.Labels[0]
	if err := structs.ValidateName("group", name); err != nil {
		d.errorf(b.LabelRanges[0], "%v", err)
	}
	g := &structs.TaskGroup{Name: name, Count: 1}
	c := d.content(b.Body, groupSchema)
	d.integer(c.attrs["count"], 0, math.MaxInt32, &g.Count)
	g.Meta = d.stringMap(c, "meta")
	g.Labels = d.endpointLabels(c)
	for _, cb := range c.blocks["constraint"] {
		if con := d.constraint(cb); con != nil {
			g.Constraints = append(g.Constraints, con)
		}
	}
	for _, ab := range c.blocks["affinity"] {
		if aff := d.affinity(ab); aff != nil {
			g.Affinities = append(g.Affinities, aff)
		}
	}
	for _, sb := range c.blocks["spread"] {
		if sp := d.spread(sb); sp != nil {
			g.Spreads = append(g.Spreads, sp)
		}
	}

	// A group inherits the job's update and reschedule blocks; its own
	// blocks override them setting by setting, as in Nomad.
	if job.Update != nil {
		u := *job.Update
		g.Update = &u
	}
	if ub := c.block("update"); ub != nil {
		if job.Type == structs.JobTypeBatch {
			d.warnf(ub.TypeRange, "update block is ignored: batch jobs are not updated in place, as in Nomad")
		} else {
			base := g.Update
			if base == nil {
				base = structs.DefaultUpdateStrategy()
			}
			g.Update = d.update(ub, base)
		}
	}
	r := *resched
	g.Reschedule = &r
	if rb := c.block("reschedule"); rb != nil {
		g.Reschedule = d.reschedule(rb, g.Reschedule)
	}
	restart := structs.DefaultRestartPolicy()
	if rb := c.block("restart"); rb != nil {
		restart = d.restart(rb, restart)
	}
	g.Restart = &restart

	var ports map[string]bool
	if nb := c.block("network"); nb != nil {
		ports, g.Ports = d.network(nb)
	}

	tasks := c.blocks["task"]
	if len(tasks) == 0 {
		d.errorf(b.LabelRanges[0], "group %q has no task: add task \"name\" { driver = \"containerd\" config { image = \"...\" } }", name)
	}
	seen := map[string]*hclsyntax.Block{}
	for _, tb := range tasks {
		tname := tb.Labels[0]
		if prev := seen[tname]; prev != nil {
			d.errorf(tb.LabelRanges[0], "duplicate task %q in group %q; the first is at line %d", tname, name, prev.TypeRange.Start.Line)
			continue
		}
		seen[tname] = tb
		if t := d.task(tb, g, ports); t != nil {
			g.Tasks = append(g.Tasks, t)
		}
	}
	return g
}

var networkSchema = &schema{
	name:   "network block",
	attrs:  []string{"mode"},
	blocks: map[string]int{"port": 1},
	multi:  []string{"port"},
	ignored: map[string]string{
		"dns":      "allocations use the worker's resolver",
		"hostname": "the container's hostname is set by Hive",
		"mbits":    "bandwidth is not reserved",
	},
}

var portSchema = &schema{
	name:  "port block",
	attrs: []string{"static", "to", "host_network"},
}

// network checks a group's network block and returns its port labels and
// the ports to publish. Every Hive allocation has its own network
// namespace, as in Nomad's bridge mode; a port is published on the
// worker's address at `static` (or a port the worker picks) and forwarded
// to `to` (or the same number) in the allocation.
func (d *decoder) network(b *hclsyntax.Block) (map[string]bool, []structs.PortMapping) {
	c := d.content(b.Body, networkSchema)
	var mode string
	if a := c.attrs["mode"]; a != nil && d.str(a, &mode) {
		switch mode {
		case "bridge":
		case "host":
			d.warnf(a.Expr.Range(), "network mode \"host\" is ignored: every Hive allocation gets its own network namespace, as in bridge mode")
		default:
			d.errorf(a.Expr.Range(), "network mode %q is not supported: use \"bridge\"", mode)
		}
	}
	ports := map[string]bool{}
	var mappings []structs.PortMapping
	first := map[string]int{}
	statics := map[int]int{}
	for _, pb := range c.blocks["port"] {
		label := pb.Labels[0]
		if line, dup := first[label]; dup {
			d.errorf(pb.LabelRanges[0], "duplicate port %q; the first is at line %d", label, line)
			continue
		}
		first[label] = pb.TypeRange.Start.Line
		ports[label] = true
		pc := d.content(pb.Body, portSchema)
		m := structs.PortMapping{Label: label}
		if a := pc.attrs["static"]; a != nil && d.integer(a, 1, 65535, &m.Static) {
			if line, dup := statics[m.Static]; dup {
				d.errorf(a.Expr.Range(), "static port %d is also published by the port at line %d", m.Static, line)
			}
			statics[m.Static] = pb.TypeRange.Start.Line
		}
		var to int
		if d.integer(pc.attrs["to"], -1, 65535, &to) && to > 0 {
			m.To = to // -1 and 0 mean Nomad's "same as the host port"
		}
		var s string
		d.str(pc.attrs["host_network"], &s)
		mappings = append(mappings, m)
	}
	return ports, mappings
}

var taskSchema = &schema{
	name:  "task block",
	attrs: []string{"driver", "user"},
	maps:  []string{"env", "meta"},
	blocks: map[string]int{"config": 0, "resources": 0, "security": 0, "restart": 0, "constraint": 0, "affinity": 0,
		"secret": 1},
	multi: []string{"constraint", "affinity", "secret"},
	ignored: map[string]string{
		"service":        "Hive has no service discovery yet",
		"logs":           "the worker keeps task logs by its own settings",
		"kill_timeout":   "Hive stops tasks with its own grace period",
		"kill_signal":    "Hive stops tasks with SIGTERM, then SIGKILL",
		"shutdown_delay": "Hive has no service registrations to remove first",
		"leader":         "every task of a group runs until it exits",
	},
	refused: map[string]string{
		"template":         "templates are not supported yet; pass configuration through env or the image",
		"artifact":         "artifacts are not supported; build them into the image",
		"vault":            "use Hive secrets instead of Vault",
		"volume_mount":     "volumes are not supported yet",
		"lifecycle":        "prestart, poststart and sidecar tasks are not supported yet",
		"identity":         "workload identities are not supported yet",
		"dispatch_payload": "dispatched jobs are not supported yet",
		"csi_plugin":       "CSI plugins are not supported",
		"scaling":          "autoscaling is not supported",
		"consul":           "Hive does not use Consul",
		"spread":           "set spread in the group or job",
	},
}

func (d *decoder) task(b *hclsyntax.Block, g *structs.TaskGroup, ports map[string]bool) *structs.Task {
	before := len(d.diags)
	name := b.Labels[0]
	t := &structs.Task{
		Name:      name,
		Driver:    "containerd",
		Resources: structs.Resources{CPU: 100, MemoryMB: 300},
		Restart:   *g.Restart,
	}
	if err := structs.ValidateName("task", name); err != nil {
		d.errorf(b.LabelRanges[0], "%v", err)
	}
	c := d.content(b.Body, taskSchema)
	if a := c.attrs["driver"]; a != nil && d.str(a, &t.Driver) {
		switch t.Driver {
		case "containerd":
		case "docker":
			// Hive runs OCI images through containerd; "docker" files
			// describe the same thing.
			t.Driver = "containerd"
		default:
			d.errorf(a.Expr.Range(), "driver %q is not supported: use \"containerd\" (\"docker\" is accepted as an alias)", t.Driver)
		}
	}
	d.str(c.attrs["user"], &t.User)
	t.Env = d.stringMap(c, "env")
	// Task meta has no field of its own in structs.Task; it becomes
	// container labels, where an operator inspecting the container sees it.
	meta := d.stringMap(c, "meta")
	var labels map[string]string
	var secSet map[string]hcl.Range
	if cb := c.block("config"); cb != nil {
		labels, secSet = d.config(cb, t, ports)
	} else {
		d.errorf(b.LabelRanges[0], "task %q has no config block: add config { image = \"...\" }", name)
	}
	if sb := c.block("security"); sb != nil {
		d.security(sb, &t.Security, secSet)
	}
	if len(meta)+len(labels) > 0 {
		t.Labels = map[string]string{}
		for k, v := range meta {
			t.Labels[k] = v
		}
		for k, v := range labels {
			t.Labels[k] = v
		}
		rng := b.LabelRanges[0]
		if a := c.attrs["meta"]; a != nil {
			rng = a.NameRange
		} else if mb := c.block("meta"); mb != nil {
			rng = mb.TypeRange
		}
		for k := range meta {
			if strings.HasPrefix(k, "hive.") {
				d.errorf(rng, "meta key %q: names starting with \"hive.\" are reserved", k)
			}
		}
	}
	if rb := c.block("resources"); rb != nil {
		d.resources(rb, &t.Resources)
	}
	if rb := c.block("restart"); rb != nil {
		t.Restart = d.restart(rb, t.Restart)
	}
	if sbs := c.blocks["secret"]; len(sbs) > 0 {
		envLine := 0
		if a := c.attrs["env"]; a != nil {
			envLine = a.SrcRange.Start.Line
		} else if eb := c.block("env"); eb != nil {
			envLine = eb.TypeRange.Start.Line
		}
		t.Secrets = d.secrets(sbs, t.Env, envLine)
	}
	// Constraints and affinities on a task apply to where its group is
	// placed: a group's tasks always share a node.
	for _, cb := range c.blocks["constraint"] {
		if con := d.constraint(cb); con != nil {
			g.Constraints = append(g.Constraints, con)
		}
	}
	for _, ab := range c.blocks["affinity"] {
		if aff := d.affinity(ab); aff != nil {
			g.Affinities = append(g.Affinities, aff)
		}
	}
	// structs' own check is the last word on what a worker can run; it
	// should find nothing the checks above missed.
	if len(d.diags) == before {
		if err := t.Validate(); err != nil {
			d.errorf(b.LabelRanges[0], "%v", err)
		}
	}
	return t
}

var configSchema = &schema{
	name: "config block",
	attrs: []string{"image", "command", "args", "entrypoint", "ports",
		"cap_add", "cap_drop", "privileged", "readonly_rootfs"},
	maps: []string{"labels"},
	ignored: map[string]string{
		"force_pull": "workers pull images by digest",
	},
	refused: map[string]string{
		"volumes":           "volumes are not supported yet",
		"mount":             "mounts are not supported yet",
		"mounts":            "mounts are not supported yet",
		"volume_driver":     "volumes are not supported yet",
		"network_mode":      "every allocation gets its own network namespace",
		"port_map":          "use a group network block with port \"name\" { to = ... }",
		"auth":              "registry credentials are not supported yet",
		"dns_servers":       "allocations use the worker's resolver",
		"hostname":          "the container's hostname is set by Hive",
		"work_dir":          "set the working directory in the image",
		"devices":           "devices are not supported",
		"security_opt":      "use the task's security block",
		"sysctl":            "sysctls are not supported",
		"ulimit":            "ulimits are not supported",
		"ipc_mode":          "containers get their own IPC namespace",
		"pid_mode":          "containers get their own PID namespace",
		"userns_mode":       "user namespaces are not supported yet",
		"logging":           "the worker keeps task logs by its own settings",
		"extra_hosts":       "extra hosts are not supported",
		"shm_size":          "shm_size is not supported",
		"runtime":           "Hive runs runc",
		"tty":               "containers get no terminal",
		"interactive":       "containers get no stdin",
		"memory_hard_limit": "set memory in the resources block",
		"cpu_hard_limit":    "CPU is shared by weight",
	},
}

// config decodes the driver's config block. Docker's security options
// (cap_add, cap_drop, privileged, readonly_rootfs) are accepted here too,
// as Nomad's docker driver takes them; secSet records which were set and
// where, so a security block cannot contradict them silently.
func (d *decoder) config(b *hclsyntax.Block, t *structs.Task, ports map[string]bool) (labels map[string]string, secSet map[string]hcl.Range) {
	c := d.content(b.Body, configSchema)
	if a := c.attrs["image"]; a == nil {
		d.errorf(b.TypeRange, "task %q: config needs an image, like image = \"redis:7\"", t.Name)
	} else if d.str(a, &t.Config.Image) && strings.TrimSpace(t.Config.Image) == "" {
		d.errorf(a.Expr.Range(), "task %q: image cannot be empty", t.Name)
	} else if strings.ContainsAny(t.Config.Image, " \t\n") {
		d.errorf(a.Expr.Range(), "task %q: image %q cannot contain spaces", t.Name, t.Config.Image)
	}
	d.str(c.attrs["command"], &t.Config.Command)
	d.strings(c.attrs["args"], &t.Config.Args)
	d.strings(c.attrs["entrypoint"], &t.Config.Entrypoint)
	var portRefs []string
	if a := c.attrs["ports"]; a != nil && d.strings(a, &portRefs) {
		for _, p := range portRefs {
			if !ports[p] {
				d.errorf(a.Expr.Range(), "port %q is not declared: add port %q { to = ... } to the group's network block", p, p)
			}
		}
	}
	labels = d.stringMap(c, "labels")
	if a := c.attrs["labels"]; a != nil || c.block("labels") != nil {
		var rng hcl.Range
		if a != nil {
			rng = a.NameRange
		} else {
			rng = c.block("labels").TypeRange
		}
		for k := range labels {
			if strings.HasPrefix(k, "hive.") {
				d.errorf(rng, "label %q: names starting with \"hive.\" are reserved", k)
			}
		}
	}
	secSet = map[string]hcl.Range{}
	sec := &t.Security
	if a := c.attrs["cap_add"]; a != nil && d.caps(a, &sec.CapAdd) {
		secSet["cap_add"] = a.NameRange
	}
	if a := c.attrs["cap_drop"]; a != nil && d.caps(a, &sec.CapDrop) {
		secSet["cap_drop"] = a.NameRange
	}
	if a := c.attrs["privileged"]; a != nil && d.boolean(a, &sec.Privileged) {
		secSet["privileged"] = a.NameRange
	}
	if a := c.attrs["readonly_rootfs"]; a != nil && d.boolean(a, &sec.ReadOnlyRootfs) {
		secSet["read_only_rootfs"] = a.NameRange
	}
	return labels, secSet
}

var securitySchema = &schema{
	name:  "security block",
	attrs: []string{"read_only_rootfs", "cap_add", "cap_drop", "privileged"},
}

// security decodes Hive's security block. Everything is off unless set.
func (d *decoder) security(b *hclsyntax.Block, sec *structs.SecurityContext, fromConfig map[string]hcl.Range) {
	c := d.content(b.Body, securitySchema)
	for _, name := range securitySchema.attrs {
		a := c.attrs[name]
		if a == nil {
			continue
		}
		if prev, ok := fromConfig[name]; ok {
			d.errorf(a.NameRange, "%s is also set in the config block at line %d; set it in one place", name, prev.Start.Line)
			continue
		}
		switch name {
		case "read_only_rootfs":
			d.boolean(a, &sec.ReadOnlyRootfs)
		case "privileged":
			d.boolean(a, &sec.Privileged)
		case "cap_add":
			d.caps(a, &sec.CapAdd)
		case "cap_drop":
			d.caps(a, &sec.CapDrop)
		}
	}
}

// caps decodes a list of capability names: "ALL", or "NET_ADMIN" with or
// without "CAP_", in any case. The worker normalizes them; this only
// catches what can never be a capability.
func (d *decoder) caps(a *hclsyntax.Attribute, dst *[]string) bool {
	var caps []string
	if !d.strings(a, &caps) {
		return false
	}
	for _, c := range caps {
		ok := c != ""
		for _, r := range c {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r >= '0' && r <= '9') {
				ok = false
			}
		}
		if !ok {
			d.errorf(a.Expr.Range(), "%s: %q is not a capability name (like \"NET_ADMIN\" or \"ALL\")", a.Name, c)
			return false
		}
	}
	*dst = caps
	return true
}

var resourcesSchema = &schema{
	name:  "resources block",
	attrs: []string{"cpu", "memory"},
	ignored: map[string]string{
		"disk": "tasks write to their container's own layer",
		"iops": "disk bandwidth is not reserved",
	},
	refused: map[string]string{
		"memory_max": "memory is a hard limit; raise memory instead",
		"cores":      "CPU is shared by weight; set cpu in MHz",
		"device":     "devices are not supported",
		"network":    "use a group network block",
		"numa":       "NUMA placement is not supported",
		"secrets":    "secrets are not supported here",
	},
}

func (d *decoder) resources(b *hclsyntax.Block, r *structs.Resources) {
	c := d.content(b.Body, resourcesSchema)
	d.integer(c.attrs["cpu"], 1, math.MaxInt32, &r.CPU)
	if a := c.attrs["memory"]; a != nil {
		var mb int
		if d.integer(a, 0, math.MaxInt32, &mb) {
			if mb < structs.MinMemoryMB {
				d.errorf(a.Expr.Range(), "memory must be at least %d MiB, got %d", structs.MinMemoryMB, mb)
			} else {
				r.MemoryMB = mb
			}
		}
	}
}

// endpointLabels decodes a job's or group's labels (labels = { ... } or a
// labels block, like meta): what network policies select its allocations
// by. Problems are reported at the labels argument or block.
func (d *decoder) endpointLabels(c *content) map[string]string {
	labels := d.stringMap(c, "labels")
	if len(labels) == 0 {
		return labels
	}
	var rng hcl.Range
	if a := c.attrs["labels"]; a != nil {
		rng = a.Expr.Range()
	} else {
		rng = c.block("labels").TypeRange
	}
	if err := structs.ValidateEndpointLabels(labels); err != nil {
		d.errorf(rng, "labels: %v", err)
	}
	return labels
}
