package gossip

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/serf/serf"

	"github.com/hivesec/hive/structs"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

// member starts a Serf agent on its own loopback address (127.0.222.N, far
// from the server tests' range).
func member(t *testing.T, n int, keys ...[]byte) *serf.Serf {
	t.Helper()
	ip := fmt.Sprintf("127.0.222.%d", n)
	sf, err := Start(Config{
		NodeID: fmt.Sprintf("node-%d", n), Role: structs.RoleWorker, BindAddr: ip, Advertise: ip, Port: 17502,
		APIPort: 0, RPCPort: 0, Keys: keys, SnapshotPath: filepath.Join(t.TempDir(), "serf", "snap"),
		Logger: hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sf.Shutdown() })
	return sf
}

func TestStartRefusesBadKeys(t *testing.T) {
	for name, keys := range map[string][][]byte{
		"no keys":         nil,
		"short key":       {make([]byte, 16)},
		"long second key": {key(1), make([]byte, 33)},
	} {
		_, err := Start(Config{NodeID: "x", Role: structs.RoleWorker, BindAddr: "127.0.222.250", Advertise: "127.0.222.250", Port: 17502, Keys: keys, Logger: hclog.NewNullLogger()})
		if err == nil {
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

func TestMembersNeedTheKey(t *testing.T) {
	a := member(t, 1, key(1))
	// b also holds a key a lacks, as mid-rotation (installed, not yet used).
	b := member(t, 2, key(1), key(2))
	c := member(t, 3, key(3))
	if tags := a.LocalMember().Tags; tags[TagRole] != string(structs.RoleWorker) || tags[TagRPCPort] != "0" {
		t.Errorf("tags %v", tags)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	JoinAny(ctx, b, []string{"127.0.222.1:17502"}, hclog.NewNullLogger())
	deadline := time.Now().Add(10 * time.Second)
	for a.NumNodes() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("a member with the key in its keyring did not join: %d nodes", a.NumNodes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, err := c.Join([]string{"127.0.222.1:17502"}, true); err == nil && n > 0 {
		t.Errorf("a member without the key joined (%d contacted)", n)
	}
	if a.NumNodes() != 2 {
		t.Errorf("a sees %d members after the keyless join attempt, want 2", a.NumNodes())
	}
}
