package jobspec

import (
	"math"
	"time"

	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hivesec/hive/structs"
)

var updateSchema = &schema{
	name:  "update block",
	attrs: []string{"max_parallel", "min_healthy_time", "healthy_deadline", "auto_revert", "canary", "auto_promote", "health_check"},
	ignored: map[string]string{
		"progress_deadline": "a deployment fails when an allocation misses healthy_deadline",
		"stagger":           "deprecated in Nomad; Hive waits min_healthy_time between batches",
	},
}

// update applies an update block over base (the job's strategy or the
// default): settings not written keep base's value.
func (d *decoder) update(b *hclsyntax.Block, base *structs.UpdateStrategy) *structs.UpdateStrategy {
	u := *base
	c := d.content(b.Body, updateSchema)
	d.integer(c.attrs["max_parallel"], 0, math.MaxInt32, &u.MaxParallel)
	d.duration(c.attrs["min_healthy_time"], &u.MinHealthyTime)
	d.duration(c.attrs["healthy_deadline"], &u.HealthyDeadline)
	d.boolean(c.attrs["auto_revert"], &u.AutoRevert)
	d.integer(c.attrs["canary"], 0, math.MaxInt32, &u.Canary)
	d.boolean(c.attrs["auto_promote"], &u.AutoPromote)
	var hc string
	if a := c.attrs["health_check"]; a != nil && d.str(a, &hc) {
		switch hc {
		case "task_states":
		case "checks":
			d.warnf(a.Expr.Range(), "health_check \"checks\" is treated as \"task_states\": Hive has no health checks yet, an allocation is healthy once its tasks have run for min_healthy_time")
		default:
			d.errorf(a.Expr.Range(), "health_check %q is not supported: use \"task_states\"", hc)
		}
	}
	if u.HealthyDeadline > 0 && u.MinHealthyTime >= u.HealthyDeadline {
		rng := b.TypeRange
		if a := c.attrs["min_healthy_time"]; a != nil {
			rng = a.Expr.Range()
		}
		d.errorf(rng, "min_healthy_time (%s) must be less than healthy_deadline (%s)", u.MinHealthyTime, u.HealthyDeadline)
	}
	return &u
}

var rescheduleSchema = &schema{
	name:  "reschedule block",
	attrs: []string{"attempts", "interval", "delay", "delay_function", "max_delay", "unlimited"},
}

// reschedule applies a reschedule block over base.
func (d *decoder) reschedule(b *hclsyntax.Block, base *structs.ReschedulePolicy) *structs.ReschedulePolicy {
	r := *base
	c := d.content(b.Body, rescheduleSchema)
	d.integer(c.attrs["attempts"], 0, math.MaxInt32, &r.Attempts)
	d.duration(c.attrs["interval"], &r.Interval)
	d.duration(c.attrs["delay"], &r.Delay)
	d.duration(c.attrs["max_delay"], &r.MaxDelay)
	d.boolean(c.attrs["unlimited"], &r.Unlimited)
	if a := c.attrs["delay_function"]; a != nil && d.str(a, &r.DelayFunction) {
		switch r.DelayFunction {
		case "constant", "exponential", "fibonacci":
		default:
			d.errorf(a.Expr.Range(), "delay_function %q: use \"constant\", \"exponential\" or \"fibonacci\"", r.DelayFunction)
		}
	}
	if r.DelayFunction != "constant" && r.MaxDelay < r.Delay {
		rng := b.TypeRange
		if a := c.attrs["max_delay"]; a != nil {
			rng = a.Expr.Range()
		}
		d.errorf(rng, "max_delay (%s) cannot be less than delay (%s) with delay_function %q", r.MaxDelay, r.Delay, r.DelayFunction)
	}
	if !r.Unlimited && r.Attempts > 0 && r.Interval <= 0 {
		d.errorf(b.TypeRange, "reschedule: %d attempts need an interval to count them in", r.Attempts)
	}
	return &r
}

var restartSchema = &schema{
	name:  "restart block",
	attrs: []string{"attempts", "interval", "delay", "mode"},
	ignored: map[string]string{
		"render_templates": "Hive has no templates",
	},
}

// restart applies a restart block over base.
func (d *decoder) restart(b *hclsyntax.Block, base structs.RestartPolicy) structs.RestartPolicy {
	r := base
	c := d.content(b.Body, restartSchema)
	d.integer(c.attrs["attempts"], 0, math.MaxInt32, &r.Attempts)
	d.duration(c.attrs["interval"], &r.Interval)
	d.duration(c.attrs["delay"], &r.Delay)
	if a := c.attrs["mode"]; a != nil && d.str(a, &r.Mode) {
		switch r.Mode {
		case structs.RestartModeFail, structs.RestartModeDelay:
		default:
			d.errorf(a.Expr.Range(), "restart mode %q: use \"fail\" or \"delay\"", r.Mode)
		}
	}
	// As Nomad checks: the attempts must fit in the interval.
	if r.Attempts > 0 && r.Interval > 0 && r.Delay > 0 && r.Delay > r.Interval/time.Duration(r.Attempts) {
		d.errorf(b.TypeRange, "restart: %d attempts %s apart do not fit in an interval of %s", r.Attempts, r.Delay, r.Interval)
	}
	return r
}
