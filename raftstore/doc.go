// Package raftstore is shoal's replicated state: the raft log on disk, the
// raft protocol loop, the transports that carry raft messages, and the typed
// object store that raft replicates.
//
// # Pieces
//
//   - DiskStorage: etcd raft's Storage: entries and hard state in an
//     append-only segmented log, snapshots and metadata in a bbolt file,
//     the uncompacted log mirrored in memory for reads (storage.go, wal.go).
//   - Node: one raft member. Run drives etcd raft's Ready loop; Propose,
//     Barrier and LinearizableRead give writes and fresh reads with
//     deadlines; AddMember/RemoveMember change membership; leadership is
//     observed with SubscribeLeadership (node.go, members.go, snapshot.go).
//   - Transport: GRPCTransport (per-peer bounded queues, one client stream
//     per peer, chunked snapshot streams; a ping to a peer it sent nothing
//     for a second, so that followers, which exchange no raft messages,
//     count each other reachable, and a leader counts for CheckQuorum a
//     follower whose raft loop is starved but whose process is up:
//     peerAlive) and RaftService, its server side;
//     MemNetwork/MemTransport for in-process tests, which can drop, cut and
//     isolate links (transport*.go).
//   - Store: tables of copy-on-write B-trees for Cluster, Node, Service,
//     Task, Network, Secret and Config with their indexes; Update builds a
//     transaction, the Node replicates it, Apply applies it on every
//     member; watches deliver events with bounded queues (store.go,
//     tables.go, tx.go, watch.go).
//
// # Ready loop contract
//
// Two goroutines: the Ready loop (Run) writes and sends, the applier
// (apply.go) applies committed entries to the store, in order, from a
// queue bounded by bytes (256 MiB of entries, up to 4,096 Readys; a full
// queue holds the Ready loop back, and a Ready loop held back answers no
// one, so a follower whose applier lags must not fill it: apply.go).
// Consecutive transactions in what the applier takes, up to 64 KiB of
// them, are applied to one fork of the store and published together (Store.ApplyBatch: a tree path
// several of them write is copied once; one that fails a check is undone
// in the fork), and their proposers hear back only once all are
// published.
// For each raft.Ready, in order:
//
//  1. Committed entries already on this member's disk (at or below the last
//     index the log held before this Ready, and below the first entry this
//     Ready writes) are queued for the applier, which applies them while
//     the Ready is written: a commit never waits for the fsync of newer
//     entries. On the leader that is every committed entry (raft counts the
//     leader's own entries only once persisted).
//  2. The leader sends its messages (it may write its own disk in parallel,
//     raft thesis 10.2.1).
//  3. A snapshot is written to bbolt (its own fsynced transaction), then
//     the entries and the hard state are appended to the log with one
//     write and one fdatasync, skipped when raft says only the commit index
//     moved; followers send their messages only after that.
//  4. A received snapshot replaces the store once the applier has applied
//     everything queued (it is idle while the store is replaced).
//  5. The other committed entries (a follower may learn of entries and of
//     their commit in one Ready) are queued, now durable here.
//  6. When the committed entries hold a membership change, the loop waits
//     for the applier, so raft knows the new membership (ApplyConfChange)
//     before it goes on; then Advance.
//
// Raft is told entries are applied (Advance) before the applier gets to
// them; nothing else depends on it: a proposal is acknowledged by the
// applier once its entry is applied on the leader (which implies it is
// durable on a majority), WaitApplied and LinearizableRead wait for the
// applier's index (a read index is served only once applied >= index), and
// the applier takes snapshots after a batch, at its applied index with the
// membership as of that index, never past what this member's log holds. A
// disk fault first lets the applier finish what it holds (durable entries,
// applied while raft still runs), then is ridden out; shutdown stops the
// applier after the batch it is applying, while raft still runs, and fails
// every waiting proposal with errdefs.ErrStopped. An entry the applier
// cannot apply stops the node, as before.
//
// Why an applier and not raft's AsyncStorageWrites: the applier moves the
// apply, the part that held commits back, out of the loop with the
// ordering above, and keeps the disk fault handling (a failed write stops
// raft before anything newer than the disk is acknowledged or applied)
// unchanged; AsyncStorageWrites would also move the log writes and their
// acknowledgements onto message passing with raft, a larger change to the
// fault handling for a gain (writes overlapping each other) that a log
// needing one fdatasync per write gets more simply.
//
// # Elections
//
// The election timeout is 30 ticks of 100 ms by default (3 s; see
// api.DefaultElectionTick). A follower that finds the leader's connection
// down and the leader silent for three heartbeat ticks forgets it and
// campaigns by rank: the survivor with the lowest raft ID at once, each
// next one half a second later (so two do not split the vote), and again
// up to five times while no leader emerges, by rank too (campaign.go,
// forgetCampaign), so a killed leader is replaced in about a second. A
// campaign under way is not restarted (a candidacy for two seconds), and
// a pre-candidate of such a campaign ignores the pre-vote requests of
// members with a higher raft ID (ignoreRivalPreVote): busy survivors that
// campaign together elect the lower one in one round instead of splitting
// the vote; it does not when the rival's log is ahead or its own requests
// are held back for being behind on apply (it could not win). A new
// leader counts its voters active for its first CheckQuorum (votersAlive),
// so a starved voter has two election timeouts, not one, to answer its
// first append. A rival's vote request (a candidacy: it won its pre-votes)
// holds this member's own campaign back for a stagger from the moment it
// arrives (noteRivalCandidacy), not from when a starved Ready loop gets to
// the vote granted. A follower asked for a vote while its own
// connection to the leader is down and the leader silent for a heartbeat
// forgets it first, rather than ignore the request for the leader's lease
// until its own tick notices; so does one that has heard nothing from the
// leader for a second when the asker's vote request says its own
// connection to that leader broke (markVoteRequests). A member with more than
// campaignMaxLag committed entries still to apply drops its own vote
// requests (campaign.go): elected, it would serve nothing until it had
// applied them, so it votes for a member that has caught up instead.
// CampaignIfAlone lets the cluster's only voter (a new or restarted
// one-manager swarm) campaign as soon as it has applied what was committed
// before it started, instead of after an election timeout.
//
// # Snapshots
//
// A member snapshots its store in the background after SnapshotInterval
// applied entries (the cluster's setting, SetSnapshotPolicy) or once the
// entries applied since the last snapshot hold 8 MiB or twice as many bytes
// as that snapshot (snapshotLogRatio; also one it restored: a restarted
// member measures the log it replays against it), whichever is more; it
// then keeps at most LogEntriesForSlowFollowers entries, and no more than
// 8 MiB of them. So the log stays within about twice the state (with the
// snapshot, three times), whatever the entry sizes, and snapshots cost at
// most half an encode per byte of log; on disk add up to one log segment
// (64 MiB), since segments are dropped whole.
// The snapshot's bytes are written to bbolt without the storage lock that
// the Ready loop's Save takes (only the install in memory and the log's
// compaction take it): a Ready loop held for a snapshot of a million tasks
// sends no heartbeats, and its followers would depose it
// (TestSaveGoesOnWhileASnapshotIsWritten).
//
// # Disk faults
//
// A Save that fails with ENOSPC, EDQUOT, EIO or EROFS is not fatal
// (node_fault.go). The failed Ready is dropped unadvanced, and none of its
// committed entries is applied but those already durable before it,
// the raft node is stopped, and the member records a *DiskFaultError
// (naming the errno, the file and the fix): writes, reads and waits fail
// with it, proposals in flight get it marked "may still be applied",
// leadership subscribers see "not leading", and raft messages from others
// are refused with it (the transports report it to the sender, whose
// Members shows it). The disk is probed with a bounded backoff; when a
// scratch write and a write transaction on the reopened file succeed, raft
// restarts from the file with Applied = the store's applied index. The
// in-memory log is only ever filled from what the file holds. Any other
// failure to persist still stops the node.
//
// # Commands
//
// Every normal entry starts with a Command byte and the proposer's 8-byte
// request ID, then the payload. CmdTransaction carries an api.Transaction;
// CmdTransactionDeflated the same deflated (transactions over 16 KiB, which
// thousands of tasks of one spec shrink about 7×; snapshot data over 16 KiB
// is deflated too, marked by a prefix no protobuf starts with); CmdNoop is
// a barrier. A command byte with the 0x80 bit set may be skipped
// by an older binary; any other unknown command stops the node rather than
// letting replicas diverge. Membership changes are raft ConfChange entries
// whose context is an api.RaftMember.
//
// # Optimistic concurrency
//
// Every object's Meta.Version is the raft index of its last write. An update
// names the version it read; Apply fails the whole transaction with
// errdefs.ErrConflict when the object has moved on. No lock is held across
// consensus: many proposals are in flight at once and raft batches them.
//
// An Update callback builds its transaction on a private snapshot of the
// store and holds no store lock. Its writes are recorded as actions and
// reach the snapshot's private fork of the trees only when one of its reads
// needs a tree other than the one by ID (reads by ID see them at once): a
// callback that reads by ID and writes costs no tree insert, and each
// object is inserted once, by Apply, on every member alike. An aborted
// callback (fn's error) drops its fork: nothing it wrote is seen by anyone.
//
// # The object store's tables
//
// Each kind is a table of B-trees (github.com/google/btree, BTreeG, degree
// 32): by ID; for kinds with unique names (all but nodes and tasks) by
// (name, ID), empty names left out; for tasks by service ID and by node
// ID, empty IDs left out. Every list comes in the byte order of go-memdb's
// radix keys the store used before: by ID, or by service / node ID then
// task ID (Tasks, Services, Nodes, TasksByService, TasksByNode, Objects).
// Entries hold numbers that searches compare before any string, so that a
// search at 1,000,000 tasks does not read a task from memory per compare:
// a by-ID entry the ID's first 8 bytes (idEntry), a task tree's entry a
// hash of its service or node ID and the task ID's first 4 bytes
// (taskEntry; a task tree is thus ordered by that hash first, and a list
// of one service's or node's tasks is a range of it, in ID order).
//
// The store publishes a set of tables (a db) that is never modified again.
// View, ViewAndWatch and Objects take the published db under the store's
// read lock and read it with no lock held, so a read sees one whole
// transaction or none of it, and never a later one. A
// writer (Apply, or an Update callback when it flushes) forks the db, which
// shares every table, and clones a table the first time it writes to it;
// btree's Clone is lazy and copy-on-write, so a write copies only the nodes
// on its path, and only once per transaction. Apply publishes its fork
// under the store's write lock (a pointer swap); a failed Apply drops it. btree's Clone writes to
// the tree it copies (a new copy-on-write context; reads never look at it),
// so a table serializes the clones of its trees with its own mutex.
//
// Why google/btree and not go-memdb: memdb's radix trees made, per index
// and object, a leaf and copies of the nodes on its key's path, each with a
// channel of its own for memdb's WatchSets (which the store never used),
// and kept non-unique keys as value+"\x00"+ID byte strings: about 1,200
// of the 2,100 heap bytes per task, and about two thirds of Apply's CPU
// (BENCHMARKS.md, issue 13). google/btree v1.1.3 (etcd's and CockroachDB's, no dependencies of its
// own) gives typed entries, ordered iteration and lazy Clone; the snapshot and
// unique-name rules are this package's (tables.go), as they were around
// memdb.
//
// # Memory
//
// Apply and Restore point a task's spec, annotations, service annotations
// and endpoint at equal ones the store holds (its previous version's, else
// its service's), so the tasks of a service share one spec (share.go); the
// contract that stored objects are never modified makes this safe. Apply
// finds the equal ones by their bytes: transactions are encoded
// deterministically, each shared spec once (txencode.go), and a task's
// spec, service annotations or endpoint
// whose bytes equal the encoding of the one it would share is not decoded
// at all (txdecode.go); Apply decodes a transaction action by action. A
// snapshot's tasks are decoded the same way (DecodeSnapshotObjects,
// snapdecode.go: against the last task of their service before them and
// their service), so a restarted member loads a million tasks without
// decoding a million copies of the same spec. A
// watcher's channel holds 64 events; more pending events wait in a queue
// that grows on demand up to its Buffer (a goroutine per busy watcher moves
// them), so an idle watcher costs about 6 KiB (BenchmarkNodeWatcherHeap).
//
// # On-disk layout of the raft log, schema version 3
//
// Two kinds of files in one directory: the bbolt file (raft.db) for what
// is rare or small, and log segments beside it for what every Ready writes.
//
//	raft.db (bbolt)
//	meta/
//	    schema          uint32 big-endian layout version (migrations[] upgrades)
//	    cipher          in clear: "xchacha20-poly1305" when records are
//	                    encrypted; absent when they are in clear
//	    key-check       sealed known value: tells a wrong key from damage
//	    raft-id         sealed uint64 big-endian: this member's raft ID
//	    snapshot-meta   sealed: uint64 data size ++ raftpb.SnapshotMetadata
//	    compacted       sealed uint64: the compaction point; log entries
//	                    before it are ignored (segments are dropped whole)
//	entries/            empty since schema 3 (schema 2 kept the entries here)
//	snapshot/
//	    <uint64 n>      sealed chunk n of the snapshot data (1 MiB each), an
//	                    api.StoreSnapshot: every object plus the raft members
//
//	raft.db.<seq, 16 hex digits>.wal   log segments, seq 1, 2, ... without gaps
//	    record: uint32 big-endian n ++ n bytes sealed (type byte ++ payload),
//	            sealed with bucket "wal" and key uint64 seq ++ uint64 offset
//	    type 1  header, the first record and only there: "shoal-wal-v1" ++ seq
//	    type 2  raftpb.Entry; an index at or below the last one replaces the
//	            suffix from it (raft's conflicting suffix)
//	    type 3  raftpb.HardState; the last one holds. Each segment starts
//	            with the current one after its header, so older segments
//	            can be dropped
//	    type 4  uint64 index ++ uint64 term: a snapshot from the leader
//	            replaced the log; entries before this record are void
//	    n = 0   the end of the records; the rest of the segment is zeros
//
// A Save appends its records with one write and one fdatasync. Segments
// are zero-filled up to the next 256 KiB boundary past the records, so most
// fdatasyncs write data only (no size change, no journal commit); a Save
// that crosses a boundary also grows the file. Past 64 MiB, the next Save goes
// to a new segment: written with its header as raft.db.<seq>.wal.tmp,
// fsynced, renamed, and the directory fsynced (a leftover .tmp is removed
// at open). CreateSnapshot records the snapshot and the compaction point
// in one bbolt transaction, then removes the oldest segments, never the
// last, whose entries are all before that point. A snapshot from the
// leader is written to bbolt first, then the type-4 record; a crash
// between the two leaves a snapshot the log does not know of: at open,
// entries that do not match the snapshot's index and term are dropped, as
// raft would have done, and a hard state whose commit (not fsynced: only
// the commit moved) lags the snapshot is raised to it.
//
// Recovery: at open every segment is read and every record checked (and
// decrypted). In the last segment, a bad record (cut short, a bad CRC or
// bytes that do not decrypt, or garbage after the last good one) with no
// good record right after it is a torn tail, a write a crash left partly
// on disk and that was therefore never acknowledged: the segment is
// truncated there (shrinking needs no free space) and appends continue.
// Anywhere else (an older segment, a good record after the bad one, a
// record that checks but does not decode, a missing or renamed segment) it
// is damage: a *DamagedError naming the segment file.
//
// Why a log of our own and not etcd's wal package (decided in issue 13):
// go.etcd.io/etcd/server/v3/storage/wal lives in the etcd server module,
// whose go.mod requires grpc-gateway, prometheus, zap, otel's SDK and
// exporters, the etcd client and api modules: about twenty modules new to
// this one for a few hundred lines of use, and its records carry entries
// and hard states in clear, with no hook for sealing a record (encryption
// would cover only Entry.Data, leaving terms, votes and commit indexes
// unauthenticated, and a record moved elsewhere would still read). The log
// here is small (wal.go), shares recordCipher with the bbolt file, and
// keeps the damage rules of the rest of the store.
//
// "sealed" means prefixed with a CRC-32C of the stored bytes; in an
// encrypted log (OpenEncryptedDiskStorage: shoald always uses it, with a
// subkey of the node's data key) the stored bytes are a random 24-byte nonce
// and the XChaCha20-Poly1305 ciphertext of the value, with "bucket/key" as
// associated data (crypt.go). At open, every record is read back and
// checked (and decrypted), and the bbolt file's page structure is checked
// before bbolt reads it (internal/boltcheck); any damage yields a
// *DamagedError that names the file and the way to recover. A damaged
// member never rejoins with an empty or older log under its old identity.
// A disk fault writing a segment is reported on raft.db (DiskFaultError
// names the raft log; the files share one file system).
//
// Migrations: 1 -> 2 changes nothing in a file (version 2 adds the
// optional encryption). A file with records in clear opened with a key is
// encrypted by writing a complete encrypted copy (raft.db.encrypting),
// fsyncing it and renaming it over the file; a crash before the rename
// leaves the old file intact (the copy is removed at the next open), so no
// moment exists where the log cannot be read. A rewrite rather than an
// update in place, so no plaintext stays behind in bbolt's free pages.
// Only files of schema 1 and 2 are encrypted so: log segments in clear
// opened with a key are refused.
//
// 2 -> 3 moves the entries and the hard state from bbolt to the segments:
// any segments present (a crashed attempt's) are removed, the records are
// checked and written to segment 1, fsynced; then one bbolt transaction
// deletes them from bbolt, records the first entry as the compaction point
// and bumps the schema. A crash before that commit leaves a schema 2 file
// (the next open migrates again); after it, a schema 3 one. A schema 3
// bbolt file that still holds entries is damage. Log segments found when
// raft.db is created (someone removed it) are renamed to
// <segment>.orphaned: the log is then empty, as without them.
//
// # Concurrency
//
// Node, Store, DiskStorage and the transports are safe for concurrent use
// (DiskStorage.reopen excepted: only the Ready loop calls it, while raft is
// stopped).
// Store.Apply is called only by the applier, Store.Restore only by the
// Ready loop while the applier is idle. Objects
// read from the store are shared and must not be modified; clone them. A
// watcher that falls behind its buffer is cut off with ErrSlowWatcher
// rather than buffered without bound; events pending when a watch ends
// may be dropped beyond the 64 its channel holds. Apply swaps the new
// snapshot in under the read/write lock that readers take, then
// broadcasts under a second lock (watchMu, always taken first), so a
// broadcast never holds off a read: each watcher's Filter runs for each
// event, but a watcher with WatchOptions.NodeID is indexed by node and
// costs only the events whose task (old or new) or node is on its node.
// ViewAndWatch takes its snapshot and starts its watch together under
// watchMu, then
// runs fn on the (immutable) snapshot after releasing it: the watch's
// events are exactly those after the snapshot, none missed or doubled, and
// events arriving while fn runs wait in the watch's Buffer. Every Propose, Barrier and read takes
// a context and fails with a clear error ("no leader", "quorum lost (N of M
// managers reachable)", "timed out") instead of hanging.
package raftstore
