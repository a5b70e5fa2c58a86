package bench

import (
	"errors"
	"fmt"
)

// problems collects the invalid settings of a benchmark's configuration, each
// message starting with the key it is about, so that Validate reports every
// one at once.
type problems []error

// add records a problem; format starts with the key.
func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Errorf(format, args...))
}

// inRange records a problem unless lo ≤ v ≤ hi.
func inRange[T int | int64](p *problems, key string, v, lo, hi T) {
	if v < lo || v > hi {
		p.add("%s: must be from %d to %d, got %d", key, lo, hi, v)
	}
}

// The settings every benchmark shares: how often it repeats and, for
// those that print a ClickHouse server's memory, which process that is.
func (p *problems) repeat(v int) { inRange(p, "repeat", v, 1, 100) }

func (p *problems) serverPID(v int) {
	if v < 0 {
		p.add("server_pid: must be 0 (look it up) or a process id, got %d", v)
	}
}

// join is the sections' own errors (Kafka, ClickHouse, logging) and then
// the problems recorded, or nil.
func (p problems) join(sections ...error) error {
	return errors.Join(append(sections, errors.Join(p...))...)
}
