package state

import (
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
	"github.com/hivesec/hive/structs"
)

// stringFieldKey is memdb.StringFieldIndex, with the same keys and errors,
// made cheaper for the primary key: StringFieldIndex looks the field up by
// name on every call, and a write computes its record's primary key three
// times (twice inside memdb's Insert, once in Txn.put) on every manager.
// This resolves the field once per record type and then reads it by
// position. Anything but a plain string field on a struct (or a pointer to
// one) goes to StringFieldIndex itself.
type stringFieldKey struct {
	memdb.StringFieldIndex
	field atomic.Pointer[resolvedField]
}

type resolvedField struct {
	typ   reflect.Type
	index int // -1: not a plain string field; use StringFieldIndex
}

func (s *stringFieldKey) FromObject(obj any) (bool, []byte, error) {
	v := reflect.Indirect(reflect.ValueOf(obj))
	if v.Kind() != reflect.Struct || s.Lowercase {
		return s.StringFieldIndex.FromObject(obj)
	}
	f := s.field.Load()
	if f == nil || f.typ != v.Type() {
		f = &resolvedField{typ: v.Type(), index: -1}
		if sf, ok := f.typ.FieldByName(s.Field); ok && len(sf.Index) == 1 && sf.Type.Kind() == reflect.String {
			f.index = sf.Index[0]
		}
		s.field.Store(f)
	}
	if f.index < 0 {
		return s.StringFieldIndex.FromObject(obj)
	}
	val := v.Field(f.index).String()
	if val == "" {
		return false, nil, nil
	}
	return true, nulTerminated(val), nil
}

func (s *stringFieldKey) FromArgs(args ...any) ([]byte, error) {
	if len(args) == 1 && !s.Lowercase {
		if arg, ok := args[0].(string); ok {
			return nulTerminated(arg), nil
		}
	}
	return s.StringFieldIndex.FromArgs(args...)
}

func (s *stringFieldKey) PrefixFromArgs(args ...any) ([]byte, error) {
	key, err := s.FromArgs(args...)
	if err != nil {
		return nil, err
	}
	return key[:len(key)-1], nil
}

// nulTerminated is val and a NUL, the key StringFieldIndex builds.
func nulTerminated(val string) []byte {
	key := make([]byte, len(val)+1)
	copy(key, val)
	return key
}

// allocJobIndex keys an allocation by namespace and job, "<ns>\x00<job>\x00",
// with an empty job for allocations created by hand. One index then serves
// both listings: by job, and (as a prefix) by namespace, which saves every
// allocation write on every manager a third secondary-index insert.
type allocJobIndex struct{}

func (allocJobIndex) FromObject(obj any) (bool, []byte, error) {
	a, ok := obj.(*structs.Allocation)
	if !ok {
		return false, nil, fmt.Errorf("allocation index: got %T", obj)
	}
	return true, allocJobKey(a.Namespace, a.JobID, true), nil
}

func (allocJobIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("allocation index: want namespace and job, got %d arguments", len(args))
	}
	ns, ok1 := args[0].(string)
	job, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("allocation index: namespace and job must be strings")
	}
	return allocJobKey(ns, job, true), nil
}

// PrefixFromArgs takes a namespace alone.
func (allocJobIndex) PrefixFromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("allocation index prefix: want a namespace, got %d arguments", len(args))
	}
	ns, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("allocation index prefix: namespace must be a string")
	}
	return allocJobKey(ns, "", false), nil
}

func allocJobKey(ns, job string, withJob bool) []byte {
	b := make([]byte, 0, len(ns)+len(job)+2)
	b = append(append(b, ns...), 0)
	if withJob {
		b = append(append(b, job...), 0)
	}
	return b
}
