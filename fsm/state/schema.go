// Package state is Hive's replicated state store: go-memdb tables with
// indexes and watch channels, written only by the FSM and read everywhere.
package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// Table names.
const (
	TableIndex       = "index"
	TableCluster     = "cluster"
	TableNodes       = "nodes"
	TableIssuedCerts = "issued_certs"
	TableNamespaces  = "namespaces"
	TableJoinTokens  = "join_tokens"
	TableACLTokens   = "acl_tokens"
	TableEvents      = "events"
	TableAllocs      = "allocs"
	TableJobs        = "jobs"
	TableJobVersions = "job_versions"
	TableEvals       = "evals"
	TableDeployments = "deployments"
)

// IndexEntry records the Raft index that last changed a table.
type IndexEntry struct {
	Key   string
	Value uint64
}

// Table describes one replicated table for snapshot and restore. Keeping the
// list here, beside the schema, means a new table cannot be forgotten by the
// snapshot code: TestSnapshotCoversEveryTable compares it with the schema.
type Table struct {
	// ID is the record type byte in a snapshot stream; never reuse one.
	ID   byte
	Name string
	// New returns an empty record to decode into.
	New func() any
}

// Tables lists every table in snapshot order.
var Tables = []Table{
	{1, TableIndex, func() any { return new(IndexEntry) }},
	{2, TableCluster, func() any { return new(structs.ClusterConfig) }},
	{3, TableNodes, func() any { return new(structs.Node) }},
	{4, TableIssuedCerts, func() any { return new(structs.IssuedCert) }},
	{5, TableNamespaces, func() any { return new(structs.Namespace) }},
	{6, TableJoinTokens, func() any { return new(structs.JoinToken) }},
	{7, TableACLTokens, func() any { return new(structs.ACLToken) }},
	{8, TableEvents, func() any { return new(structs.Event) }},
	{9, TableAllocs, func() any { return new(structs.Allocation) }},
	{10, TableJobs, func() any { return new(structs.Job) }},
	{11, TableJobVersions, func() any { return new(structs.Job) }},
	{12, TableEvals, func() any { return new(structs.Evaluation) }},
	{13, TableDeployments, func() any { return new(structs.Deployment) }},
	{14, TableUsers, func() any { return new(structs.User) }},
	{15, TableGroups, func() any { return new(structs.Group) }},
	{16, TableACLRoles, func() any { return new(structs.ACLRole) }},
	{17, TableACLBindings, func() any { return new(structs.ACLBinding) }},
	{18, TableServiceAccounts, func() any { return new(structs.ServiceAccount) }},
	{19, TableRootKeys, func() any { return new(structs.RootKey) }},
	{20, TableSecrets, func() any { return new(structs.Secret) }},
	{21, TableNetworkPolicies, func() any { return new(structs.NetworkPolicy) }},
	{22, TableAdminNetworkPolicies, func() any { return new(structs.AdminNetworkPolicy) }},
}

// TableByID finds a table by its snapshot type byte.
func TableByID(id byte) (Table, bool) {
	for _, t := range Tables {
		if t.ID == id {
			return t, true
		}
	}
	return Table{}, false
}

func idIndex(field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &stringFieldKey{StringFieldIndex: memdb.StringFieldIndex{Field: field}}}
}

// nsIndex indexes a namespace-scoped record by Namespace and field.
func nsIndex(name, field string, unique bool) *memdb.IndexSchema {
	// A record without the field (an allocation created by hand has no
	// job) is left out of a non-unique index.
	return &memdb.IndexSchema{Name: name, Unique: unique, AllowMissing: !unique, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
		&memdb.StringFieldIndex{Field: "Namespace"}, &memdb.StringFieldIndex{Field: field},
	}}}
}

func schema() *memdb.DBSchema {
	s := baseSchema()
	aclSchema(s.Tables)
	secretSchema(s.Tables)
	netpolSchema(s.Tables)
	return s
}

func baseSchema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		TableIndex:   {Name: TableIndex, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("Key")}},
		TableCluster: {Name: TableCluster, Indexes: map[string]*memdb.IndexSchema{"id": {Name: "id", Unique: true, Indexer: &memdb.ConditionalIndex{Conditional: func(any) (bool, error) { return true, nil }}}}},
		TableNodes: {Name: TableNodes, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex("ID"),
			"role": {Name: "role", Indexer: &memdb.StringFieldIndex{Field: "Role"}},
		}},
		TableIssuedCerts: {Name: TableIssuedCerts, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex("Serial"),
			"node": {Name: "node", Indexer: &stringFieldKey{StringFieldIndex: memdb.StringFieldIndex{Field: "NodeID"}}},
		}},
		TableNamespaces: {Name: TableNamespaces, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("Name")}},
		TableJoinTokens: {Name: TableJoinTokens, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex("ID"),
			"role": {Name: "role", Indexer: &memdb.StringFieldIndex{Field: "Role"}},
		}},
		TableACLTokens: {Name: TableACLTokens, Indexes: map[string]*memdb.IndexSchema{
			"id":      idIndex("AccessorID"),
			"secret":  {Name: "secret", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "SecretHash"}},
			"subject": {Name: "subject", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Subject"}},
		}},
		TableAllocs: {Name: TableAllocs, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex("ID"),
			"node": {Name: "node", Indexer: &stringFieldKey{StringFieldIndex: memdb.StringFieldIndex{Field: "NodeID"}}},
			"job":  {Name: "job", Indexer: allocJobIndex{}},
		}},
		TableJobs: {Name: TableJobs, Indexes: map[string]*memdb.IndexSchema{
			"id": nsIndex("id", "ID", true),
		}},
		TableJobVersions: {Name: TableJobVersions, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "Namespace"}, &memdb.StringFieldIndex{Field: "ID"}, &memdb.UintFieldIndex{Field: "Version"},
			}}},
		}},
		TableEvals: {Name: TableEvals, Indexes: map[string]*memdb.IndexSchema{
			"id":     idIndex("ID"),
			"job":    nsIndex("job", "JobID", false),
			"status": {Name: "status", Indexer: &memdb.StringFieldIndex{Field: "Status"}},
		}},
		TableDeployments: {Name: TableDeployments, Indexes: map[string]*memdb.IndexSchema{
			"id":  idIndex("ID"),
			"job": nsIndex("job", "JobID", false),
		}},
		TableNodeUsage: {Name: TableNodeUsage, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("NodeID")}},
		TableEvents: {Name: TableEvents, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.UintFieldIndex{Field: "Index"}, &memdb.IntFieldIndex{Field: "Seq"},
			}}},
		}},
	}}
}

func mustSchema() *memdb.DBSchema {
	s := schema()
	if err := s.Validate(); err != nil {
		panic(fmt.Sprintf("state: invalid schema: %v", err)) // programming error, caught by every test
	}
	return s
}
