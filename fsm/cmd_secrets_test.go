package fsm

import (
	"errors"
	"testing"

	"github.com/hivesec/hive/structs"
)

func secretV(v uint64, key string) *structs.SecretVersion {
	return &structs.SecretVersion{Version: v, RootKeyID: key, WrappedDataKey: []byte("dk"), Ciphertext: []byte("ct")}
}

// TestSecretWrite checks the guards of secret writes: an update must name
// the index it read, a rewrap applies only to a version still on the key
// it read, and a root key cannot go while anything uses it.
func TestSecretWrite(t *testing.T) {
	f := bootstrapped(t)
	idx := uint64(1)
	next := func() uint64 { idx++; return idx }
	mustApply(t, f, next(), SecretWriteType, &SecretWriteRequest{
		RootKeys: []*structs.RootKey{{ID: "k1", WrappedKey: []byte("w"), State: structs.RootKeyActive}},
		Secrets:  []*SecretPut{{Secret: &structs.Secret{Namespace: "default", Name: "db", Version: 1, Versions: []*structs.SecretVersion{secretV(1, "k1")}}}},
	})
	cur := f.State().Snapshot().Secret(nil, "default", "db")
	v2 := &structs.Secret{Namespace: "default", Name: "db", Version: 2, Versions: []*structs.SecretVersion{secretV(1, "k1"), secretV(2, "k1")}}

	for _, c := range []struct {
		name string
		req  *SecretWriteRequest
		want error
	}{
		{"create over existing", &SecretWriteRequest{Secrets: []*SecretPut{{Secret: v2}}}, ErrConflict},
		{"stale update", &SecretWriteRequest{Secrets: []*SecretPut{{Secret: v2, ExpectIndex: cur.ModifyIndex - 1}}}, ErrConflict},
		{"unknown root key", &SecretWriteRequest{Secrets: []*SecretPut{{Secret: &structs.Secret{Namespace: "default", Name: "x", Version: 1,
			Versions: []*structs.SecretVersion{secretV(1, "nope")}}}}}, ErrInvalid},
		{"current version missing", &SecretWriteRequest{Secrets: []*SecretPut{{Secret: &structs.Secret{Namespace: "default", Name: "x", Version: 3,
			Versions: []*structs.SecretVersion{secretV(1, "k1")}}}}}, ErrInvalid},
		{"missing namespace", &SecretWriteRequest{Secrets: []*SecretPut{{Secret: &structs.Secret{Namespace: "nope", Name: "x", Version: 1,
			Versions: []*structs.SecretVersion{secretV(1, "k1")}}}}}, ErrInvalid},
		{"delete used root key", &SecretWriteRequest{DeleteRootKeys: []string{"k1"}}, ErrConflict},
		{"two active keys", &SecretWriteRequest{RootKeys: []*structs.RootKey{
			{ID: "a", WrappedKey: []byte("w"), State: structs.RootKeyActive}, {ID: "b", WrappedKey: []byte("w"), State: structs.RootKeyActive}}}, ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := dump(t, f.State())
			res := apply(t, f, next(), SecretWriteType, c.req)
			if !errors.Is(res.Err, c.want) {
				t.Fatalf("err = %v, want %v", res.Err, c.want)
			}
			requireSameState(t, before, dump(t, f.State()))
		})
	}

	mustApply(t, f, next(), SecretWriteType, &SecretWriteRequest{Secrets: []*SecretPut{{Secret: v2, ExpectIndex: cur.ModifyIndex}}})
	// Rotation: a new key, version 1 rewrapped, version 2's rewrap names
	// a key it is not on (stale) and is skipped.
	res := mustApply(t, f, next(), SecretWriteType, &SecretWriteRequest{
		RootKeys: []*structs.RootKey{
			{ID: "k2", WrappedKey: []byte("w"), State: structs.RootKeyActive},
			{ID: "k1", WrappedKey: []byte("w"), State: structs.RootKeyRotating},
		},
		Rewraps: []SecretRewrap{
			{Namespace: "default", Name: "db", Version: 1, From: "k1", To: "k2", WrappedDataKey: []byte("new")},
			{Namespace: "default", Name: "db", Version: 2, From: "k9", To: "k2", WrappedDataKey: []byte("new")},
		},
	})
	if got := res.Value.(SecretRewrapResult).Applied; got != 1 {
		t.Errorf("applied %d rewraps, want 1", got)
	}
	sec := f.State().Snapshot().Secret(nil, "default", "db")
	if sec.VersionN(1).RootKeyID != "k2" || string(sec.VersionN(1).WrappedDataKey) != "new" || sec.VersionN(2).RootKeyID != "k1" {
		t.Errorf("versions after rewrap: v1 on %s, v2 on %s", sec.VersionN(1).RootKeyID, sec.VersionN(2).RootKeyID)
	}
	// k1 still wraps version 2: it stays until that moves too.
	if r := apply(t, f, next(), SecretWriteType, &SecretWriteRequest{DeleteRootKeys: []string{"k1"}}); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("delete k1 while used: %v", r.Err)
	}
	mustApply(t, f, next(), SecretWriteType, &SecretWriteRequest{
		Rewraps:        []SecretRewrap{{Namespace: "default", Name: "db", Version: 2, From: "k1", To: "k2", WrappedDataKey: []byte("new")}},
		DeleteRootKeys: []string{"k1"},
	})
	if f.State().Snapshot().RootKey(nil, "k1") != nil {
		t.Error("k1 survived once nothing used it")
	}
}
