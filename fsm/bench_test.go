package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/hivesec/hive/structs"
)

// BenchmarkApplyNamespaceBatch applies one Raft entry holding 64 namespace
// upserts, as the server's write batcher builds under load, to a store that
// already holds 40,000 namespaces.
func BenchmarkApplyNamespaceBatch(b *testing.B) {
	const perBatch = 64
	f := newFSM(b)
	index := uint64(1)
	batchOf := func(prefix string, n int) []byte {
		entries := make([][]byte, perBatch)
		for i := range entries {
			entries[i] = encode(b, NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: fmt.Sprintf("%s-%d-%d", prefix, n, i)}})
		}
		data, err := EncodeBatch(entries)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	applyData := func(data []byte) {
		res := f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: data}).(Result)
		index++
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		for _, r := range res.Value.(BatchResult) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	for n := 0; n < 40000/perBatch; n++ {
		applyData(batchOf("seed", n))
	}
	batches := make([][]byte, b.N)
	for n := range batches {
		batches[n] = batchOf("bench", n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		applyData(batches[n])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch), "ns/write")
}

// BenchmarkEncodeNamespaceBatch measures what the leader does per write
// before Raft: encode the command, then pack 64 of them into one entry.
func BenchmarkEncodeNamespaceBatch(b *testing.B) {
	const perBatch = 64
	b.ReportAllocs()
	entries := make([][]byte, perBatch)
	for n := 0; n < b.N; n++ {
		for i := range entries {
			data, err := Encode(NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "bench-64-12345"}})
			if err != nil {
				b.Fatal(err)
			}
			entries[i] = data
		}
		if _, err := EncodeBatch(entries); err != nil {
			b.Fatal(err)
		}
	}
}
