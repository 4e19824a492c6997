public import Foundation
public import StetCore
public import StetCrypto
public import StetAudit
public import StetEngine
public import StetManifest
import StetProviders
public import StetState

/// One host's membership of a fleet (docs/architecture.md, "A fleet on etcd"). It keeps the
/// node's lease (`nodes/NAME`, renewed at a third of its TTL), stands for leader, mirrors the
/// fleet's keys through one watch, verifies every assignment with the node's own pinned trust,
/// writes the release from etcd as a manifest directory for the loop to verify, publishes the
/// node's status and, as leader, places the release's work on the live nodes.
///
/// The reconcile loop asks it for this node's share (`FleetMembership`). It may act only while
/// its lease is provably alive: renewed less than one TTL ago, counted from when the renewal was
/// sent. Cut off from etcd, the node keeps what runs running and starts and stops nothing.
public final class FleetNode: FleetMembership, @unchecked Sendable {
    public struct Options: Sendable {
        public var keyspace: FleetKeyspace
        public var node: String
        public var labels: [String: String]
        /// Seconds (2 to 3600).
        public var leaseTTL: Int = 3
        /// Where the release from etcd is written as a manifest directory (the loop's `manifests`).
        public var releaseDirectory: String
        /// Seconds before the lease could expire at which a primary is fenced (`LeaseSettings`).
        public var fenceMargin: Double = 0.5
        /// Seconds each lease renewal may take (`LeaseSettings`).
        public var renewalTimeout: Double = 0.5
        /// Seconds between checkpoints of the node's audit log published for its witnesses (when
        /// the log grew).
        public var checkpointInterval: Double = 10
        /// When the node stops (cancelled): demote its primaries and free their keys. Off only to
        /// stand for a host that dies (`stet-bench`).
        public var stepDownOnStop = true

        public init(keyspace: FleetKeyspace, node: String, labels: [String: String], releaseDirectory: String) {
            self.keyspace = keyspace
            self.node = node
            self.labels = labels
            self.releaseDirectory = releaseDirectory
        }
    }

    /// What the node tells its host (logs, alerts, audit).
    public enum Event: Sendable {
        case log(String)
        /// As leader: a node's lease expired; and when it came back.
        case nodeDown(String)
        case nodeBack(String)
        /// This node can no longer prove what it owns; and when it can again.
        case cutOff(String)
        case reconnected
        /// `release/current` holds something that is no release at all (a refusal to record).
        case releaseUnreadable(String)
        /// A peer's audit checkpoint is not consistent with the one this node cosigned before.
        case auditFork(peer: String, message: String)
    }

    public let options: Options
    public let client: EtcdClient
    let key: PrivateKey
    let trust: TrustPolicy
    let store: FileStateStore
    let lock = NSLock()
    private let transitions = NSLock()
    var state = State()
    private let eventSink = EventSink()

    final class EventSink: @unchecked Sendable {
        private let lock = NSLock()
        private var sink: @Sendable (Event) -> Void = { _ in }
        func set(_ sink: @escaping @Sendable (Event) -> Void) { lock.withLock { self.sink = sink } }
        func callAsFunction(_ event: Event) { lock.withLock { sink }(event) }
    }

    let auditCount = EntryCount()

    final class EntryCount: @unchecked Sendable {
        private let lock = NSLock()
        private var count: @Sendable () -> Int? = { nil }
        func set(_ count: @escaping @Sendable () -> Int?) { lock.withLock { self.count = count } }
        func callAsFunction() -> Int? { lock.withLock { count }() }
    }

    /// How many entries the node's audit log has (published with its status); set before `run()`.
    public func attachAuditCount(_ count: @escaping @Sendable () -> Int?) { auditCount.set(count) }

    private let checkpoints = CheckpointHook()

    final class CheckpointHook: @unchecked Sendable {
        private let lock = NSLock()
        private var make: @Sendable (String) throws -> SignedNote = { _ in throw FleetError("no audit log attached") }
        func set(_ make: @escaping @Sendable (String) throws -> SignedNote) { lock.withLock { self.make = make } }
        func callAsFunction(_ origin: String) throws -> SignedNote { try lock.withLock { make }(origin) }
    }

    /// How the node takes a checkpoint of its audit log under an origin (published for its
    /// witnesses); set before `run()`.
    public func attachCheckpoints(_ make: @escaping @Sendable (String) throws -> SignedNote) { checkpoints.set(make) }
    func checkpointMaker(_ origin: String) throws -> SignedNote { try checkpoints(origin) }

    /// Where the node's events go; set before `run()`.
    public func attachEvents(_ sink: @escaping @Sendable (Event) -> Void) { eventSink.set(sink) }
    var events: EventSink { eventSink }

    private let auditSink = AuditHook()

    final class AuditHook: @unchecked Sendable {
        private let lock = NSLock()
        private var hook: @Sendable (AuditRecord) throws -> Void = { _ in }
        func set(_ hook: @escaping @Sendable (AuditRecord) throws -> Void) { lock.withLock { self.hook = hook } }
        func callAsFunction(_ record: AuditRecord) throws { try lock.withLock { hook }(record) }
    }

    /// Where the node records the actions it takes on its own (promote, demote, fence); set
    /// before `run()`. Throws when the record is not written.
    public func attachAudit(_ record: @escaping @Sendable (AuditRecord) throws -> Void) { auditSink.set(record) }
    func audit(_ record: AuditRecord) throws { try auditSink(record) }

    struct State {
        var lease: Int64?
        /// The lease outlives this moment for sure (monotonic nanoseconds): when the last renewal
        /// was sent, plus its TTL. Zero: not renewed, or known to be gone.
        var renewedUntil: UInt64 = 0
        var etcdFailure: String?
        /// The assignments were read at least once since the node started.
        var loaded = false
        var mirror: [String: EtcdClient.KeyValue] = [:]
        var book = AssignmentBook()
        var accepted: [Workload: Assignment] { book.accepted }
        var maxEpoch: Int64 { book.maxEpoch }
        /// Placement is running (one at a time), and whether it must run again after.
        var placing = false
        var placeAgain = false
        /// The newest revision seen in etcd (the sequence of the leader's decisions).
        var revision: Int64 = 0
        var rejected: [String: String] = [:]
        var nodes: [String: NodeRecord] = [:]
        /// By service, the live nodes drained for a host drill (`drains/`), as the leader honours them.
        var drains: [String: Set<String>] = [:]
        var departed: Set<String> = []
        var alertedDown: Set<String> = []
        var leader: (name: String, epoch: Int64, lease: Int64)?
        var release: (ref: ReleaseRef, desired: DesiredState)?
        var materialised: Int64 = 0
        var wake: (@Sendable () -> Void)?
        var toldMayAct = false
        var unplaced: [Placement.Slot] = []
        var watch: Task<Void, Never>?
        // Primaries (FleetNode+Primary).
        var primaries: [String: HeldPrimary] = [:]
        var absentSince: [String: UInt64] = [:]
        var cooldown: [String: UInt64] = [:]
        var lastHolder: [String: String] = [:]
        var lastFailover: [String: FailoverRecord] = [:]
        /// The self-heal budget this node spent and the backoff it keeps, by service.
        var corrections: [String: CorrectionPolicy.Elsewhere] = [:]
        /// Primaries the hard fence killed (their step-down is still to be recorded).
        var hardFenced: Set<String> = []
        /// `fleet/primary.json` could not be read at start: nothing is promoted.
        var primariesUnreadable = false
    }

    /// When this process made the node (BootClock ns): a lease from before it was last renewed
    /// earlier.
    let startedAt = FleetNode.now()

    public init(options: Options, client: EtcdClient, key: PrivateKey, trust: TrustPolicy, store: FileStateStore) {
        self.options = options
        self.client = client
        self.key = key
        self.trust = trust
        self.store = store
    }

    var keys: FleetKeyspace { options.keyspace }

    /// The audit log's folder, as an absolute path (published with the status).
    var auditFolder: String {
        let path = store.path("audit")
        return path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
    }
    var me: String { options.node }

    // MARK: - FleetMembership

    public func share(of desired: DesiredState) -> DesiredState? {
        lock.withLock {
            guard state.loaded else { return nil }
            return Self.share(of: desired, for: me, in: state.accepted)
        }
    }

    /// `desired` cut down to what `assignments` give `node`.
    static func share(of desired: DesiredState, for node: String, in assignments: [Workload: Assignment]) -> DesiredState {
        FleetShare(cluster: "", node: node, assignments: assignments).apply(to: desired)
    }

    public var mayAct: Bool { lock.withLock { state.loaded && Self.now() < state.renewedUntil } }

    /// Monotonic nanoseconds that count through a suspend (`BootClock`): a wall clock stepped back
    /// cannot stretch the lease, nor can a host that slept.
    static func now() -> UInt64 { BootClock.now() }

    public func releaseTaken(_ release: ReleaseRef, _ desired: DesiredState) {
        lock.withLock { state.release = (release, desired) }
        // The leader places from the release its own loop took.
        Task { await self.placeIfLeader() }
    }

    public func attach(wake: @escaping @Sendable () -> Void) { lock.withLock { state.wake = wake } }

    /// The most corrections of one service taken from one node's status.
    static let maximumSharedCorrections = 1000

    public func shareCorrections(_ mine: [ResourceID: CorrectionPolicy.Elsewhere]) {
        var byService: [String: CorrectionPolicy.Elsewhere] = [:]
        for (id, spent) in mine where id.kind == .service && id.replica == nil { byService[id.name] = spent }
        lock.withLock { state.corrections = byService }
    }

    /// What the other live nodes published of their budget and backoff, by service: each status
    /// verified as signed by its node's key, and bounded.
    public func correctionsElsewhere() -> [ResourceID: CorrectionPolicy.Elsewhere] {
        let (statuses, live) = lock.withLock { (state.mirror.filter { $0.key.hasPrefix(keys.statuses) }, state.nodes) }
        var merged: [ResourceID: CorrectionPolicy.Elsewhere] = [:]
        for (key, kv) in statuses {
            guard case .status(let name) = keys.parse(key), name != me, live[name] != nil,
                case .success(let (status, signer)) = FleetSigned.open(kv.value, type: FleetSigned.statusType, as: NodeStatus.self, trust: trust),
                status.node == name, trust.keys[signer]?.publicKey.keyID == live[name]?.keyID
            else { continue }
            for (service, spent) in status.corrections ?? [:] where ResourceID.isValidName(service) {
                let id = ResourceID(.service, service)
                var entry = merged[id] ?? CorrectionPolicy.Elsewhere()
                entry.corrections += spent.corrections.suffix(Self.maximumSharedCorrections)
                if let until = spent.until { entry.until = max(entry.until ?? until, until) }
                merged[id] = entry
            }
        }
        return merged
    }

    private func wakeLoop() { lock.withLock { state.wake }?() }

    // MARK: - Running

    /// Runs until cancelled: the lease, the watch, the status and the leader's placement.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.keepLease() }
            group.addTask { await self.followFleet() }
            group.addTask { await self.publishStatus() }
            group.addTask { await self.keepPrimaries() }
            group.addTask { await self.witnessFleet() }
        }
    }

    static func sleep(_ seconds: Double) async {
        try? await Task.sleep(nanoseconds: UInt64(max(seconds, 0) * 1e9))
    }

    /// Joins (lease, `nodes/NAME`, a bid for leader) and renews the lease at a third of its TTL.
    /// A lease etcd no longer knows means joining again; etcd out of reach is said once, and the
    /// node stops acting once its last renewal is a TTL old.
    private func keepLease() async {
        let every = Double(options.leaseTTL) / 3
        while !Task.isCancelled {
            let sent = Self.now()
            do {
                if let lease = lock.withLock({ state.lease }) {
                    if let ttl = try await client.keepAlive(lease, timeout: options.renewalTimeout) {
                        renewed(sent: sent, ttl: ttl)
                    } else {
                        // Gone: act on nothing until joined again and the fleet read afresh.
                        lock.withLock {
                            state.lease = nil
                            state.renewedUntil = 0
                            state.loaded = false
                        }
                        events(.log("the fleet lease expired (etcd no longer knows it): joining again"))
                        checkMayAct()
                        lock.withLock { state.watch }?.cancel()
                        continue
                    }
                } else {
                    try await join(sent: sent)
                }
            } catch {
                failed("\(error)")
                // Tried again at once (a lost renewal must not cost a third of the TTL), with a
                // pause so an etcd that refuses at once is not flooded.
                await Self.sleep(min(every, 0.1))
                continue
            }
            await Self.sleep(every)
        }
    }

    private func join(sent: UInt64) async throws {
        let lease = try await client.grantLease(ttl: options.leaseTTL)
        let record = NodeRecord(name: me, labels: options.labels, keyID: key.publicKey.keyID, joinedAt: RFC3339.format(Date()), lease: lease.id)
        let sealed = try FleetSigned.seal(record, type: FleetSigned.nodeType, key: key)
        // The name is this node's only if nobody holds it, or a record of this very key does (a
        // restart within the TTL); two hosts under one name would run the same share.
        let key = keys.node(me)
        let outcome = try await client.transaction([.absent(key)], success: [.put(key, sealed, lease: lease.id)], failure: [.get(key)])
        if !outcome.succeeded {
            let held = outcome.read.first.flatMap {
                try? FleetSigned.open($0.value, type: FleetSigned.nodeType, as: NodeRecord.self, trust: trust).get().0
            }
            guard held?.keyID == self.key.publicKey.keyID else {
                try? await client.revoke(lease.id)
                throw FleetError("node name \(me) is held by another host's key in cluster \(keys.cluster): choose another --node")
            }
            _ = try await client.put(key, sealed, lease: lease.id)
        }
        lock.withLock { state.lease = lease.id }
        renewed(sent: sent, ttl: lease.ttl)
        events(.log("joined cluster \(keys.cluster) as node \(me) (lease \(String(lease.id, radix: 16)), TTL \(lease.ttl) s)"))
        try await campaign()
    }

    private func renewed(sent: UInt64, ttl: Int) {
        let (recovered, restartWatch) = lock.withLock { () -> (Bool, Task<Void, Never>?) in
            state.renewedUntil = sent &+ UInt64(min(ttl, options.leaseTTL)) * 1_000_000_000
            let was = state.etcdFailure
            state.etcdFailure = nil
            // Back from a cut: what was read before may be stale. Act again only after a fresh read.
            if was != nil { state.loaded = false }
            return (was != nil, was != nil ? state.watch : nil)
        }
        if recovered {
            events(.log("etcd answers again"))
            // A watch that hung while etcd was away starts over.
            restartWatch?.cancel()
        }
        checkMayAct()
    }

    private func failed(_ message: String) {
        let first = lock.withLock { () -> Bool in
            defer { state.etcdFailure = message }
            return state.etcdFailure == nil
        }
        if first { events(.log("cannot reach etcd: \(message)")) }
        checkMayAct()
    }

    /// Says when the node's right to act changes, and wakes the loop. One caller at a time, so
    /// the changes are told (and the share file written) in the order they happened.
    func checkMayAct() {
        transitions.lock()
        defer { transitions.unlock() }
        let (may, changed, failure) = lock.withLock { () -> (Bool, Bool, String?) in
            let may = state.loaded && Self.now() < state.renewedUntil
            defer { state.toldMayAct = may }
            return (may, may != state.toldMayAct, state.etcdFailure)
        }
        guard changed else { return }
        saveShare()
        if may {
            events(.reconnected)
        } else if lock.withLock({ state.loaded }) {
            events(.cutOff(failure.map { "cannot reach etcd (\($0))" } ?? "the fleet lease was not renewed"))
        }
        wakeLoop()
    }

    /// Stands for leader: creates `leader` under this node's lease when nobody holds it.
    private func campaign() async throws {
        guard let lease = lock.withLock({ state.lease }) else { return }
        let outcome = try await client.transaction(
            [.absent(keys.leader)], success: [.put(keys.leader, Data(me.utf8), lease: lease)])
        if outcome.succeeded { events(.log("elected leader of cluster \(keys.cluster) (epoch \(outcome.revision))")) }
    }

    /// Mirrors every key of the cluster: one range, then one watch from the revision after it.
    /// When the watch ends (etcd gone, the revision compacted), reads everything again.
    private func followFleet() async {
        while !Task.isCancelled {
            let task = Task { await self.followOnce() }
            lock.withLock { state.watch = task }
            // The watch is a task of its own (a renewal after an outage restarts it); cancelling
            // the node cancels it too.
            await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
            await Self.sleep(0.2)
        }
    }

    private func followOnce() async {
        do {
            let (kvs, revision) = try await client.list(prefix: keys.prefix)
            await take(kvs: kvs, full: true)
            for try await batch in client.watch(prefix: keys.prefix, fromRevision: revision + 1) {
                await take(kvs: [], events: batch, full: false)
            }
        } catch is CancellationError {
        } catch {
            if !Task.isCancelled { failed("\(error)") }
        }
    }

    // MARK: - Reacting to the fleet's keys

    private func take(kvs: [EtcdClient.KeyValue], events batch: [EtcdClient.WatchEvent] = [], full: Bool) async {
        let (releaseChanged, shareChanged, leaderGone) = lock.withLock { () -> (Bool, Bool, Bool) in
            let before = mine()
            let releaseBefore = state.mirror[keys.release]?.modRevision
            if full {
                state.mirror = Dictionary(kvs.map { ($0.key, $0) }, uniquingKeysWith: { $1 })
            }
            state.revision = max(state.revision, kvs.map(\.modRevision).max() ?? 0, batch.map(\.kv.modRevision).max() ?? 0)
            for event in batch {
                switch event.kind {
                case .put: state.mirror[event.kv.key] = event.kv
                case .delete: state.mirror[event.kv.key] = nil
                }
            }
            readNodes()
            readDrains()
            readLeader()
            readAssignments(full: full, changed: Set(batch.map(\.kv.key)))
            let wasLoaded = state.loaded
            state.loaded = true
            let releaseNow = state.mirror[keys.release]?.modRevision
            return (releaseNow != nil && (releaseNow != releaseBefore || state.materialised != releaseNow),
                    mine() != before || !wasLoaded, state.leader == nil)
        }
        if releaseChanged { takeRelease() }
        if shareChanged { saveShare() }
        if shareChanged || releaseChanged { wakeLoop() }
        checkMayAct()
        if leaderGone { try? await campaign() }
        await placeIfLeader()
    }

    /// Keeps this node's share in the state directory for `stet status` on the host.
    private func saveShare() {
        let (accepted, acting, failure) = lock.withLock { (state.accepted, state.toldMayAct, state.etcdFailure) }
        var share = FleetShare(cluster: keys.cluster, node: me, assignments: accepted)
        share.acting = acting
        share.reason = acting ? nil : failure.map { "cannot reach etcd (\($0))" } ?? "the fleet lease is not renewed"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            try store.write(FleetShare.key, try encoder.encode(share))
        } catch {
            events(.log("cannot keep this node's share in \(store.root): \(error)"))
        }
    }

    /// This node's assignments (under the lock).
    private func mine() -> [Workload: String] {
        state.accepted.filter { $0.value.node == me }.mapValues(\.release)
    }

    /// The live nodes: a record signed by a node key, under its own name (under the lock).
    private func readNodes() {
        var nodes: [String: NodeRecord] = [:]
        for (key, kv) in state.mirror {
            guard case .node(let name) = keys.parse(key) else { continue }
            switch FleetSigned.open(kv.value, type: FleetSigned.nodeType, as: NodeRecord.self, trust: trust) {
            // Signed by the very node key it names.
            // Signed by the very node key it names, and held by the lease it was written under (an
            // old record put back without its lease names no live node).
            case .success(let (record, signer)) where record.name == name && trust.keys[signer]?.publicKey.keyID == record.keyID
                && kv.lease != 0 && kv.lease == record.lease:
                nodes[name] = record
            case .success:
                rejectOnce(key, "the record does not name this node or its key")
            case .failure(let error):
                rejectOnce(key, error.description)
            }
        }
        let gone = Set(state.nodes.keys).subtracting(nodes.keys)
        let back = Set(nodes.keys).intersection(state.departed)
        state.departed.formUnion(gone)
        state.departed.subtract(back)
        state.nodes = nodes
    }

    /// The leader and its fencing epoch: the create revision of the `leader` key (under the lock).
    private func readLeader() {
        guard let kv = state.mirror[keys.leader], let name = String(data: kv.value, encoding: .utf8), ResourceID.isValidName(name) else {
            state.leader = nil
            return
        }
        state.leader = (name, kv.createRevision, kv.lease)
    }

    /// Takes the assignments that verify: signed by a node key, for the key they are under, and
    /// not older than the newest epoch seen. One that does not is ignored (said once), and the
    /// assignment taken before stays (under the lock).
    private func readAssignments(full: Bool, changed: Set<String>) {
        var values: [String: Data?] = [:]
        for (key, kv) in state.mirror where key.hasPrefix(keys.assignments) && (full || changed.contains(key)) { values[key] = kv.value }
        for key in changed where key.hasPrefix(keys.assignments) && state.mirror[key] == nil { values[key] = .some(nil) }
        let refused = state.book.take(values, keys: keys, trust: trust, whole: full)
        for key in values.keys where refused[key] == nil { state.rejected[key] = nil }
        for (key, reason) in refused.sorted(by: { $0.key < $1.key }) { rejectOnce(key, reason) }
    }

    func rejectOnce(_ key: String, _ reason: String) {
        guard state.rejected[key] != reason else { return }
        state.rejected[key] = reason
        let shown = String(key.dropFirst(keys.prefix.count))
        events(.log("ignored \(shown) in etcd: \(reason)"))
    }

    /// Writes `release/current` as the loop's manifest directory; the loop verifies it under its
    /// pinned trust, records and alerts on a refusal, and accepts it otherwise.
    private func takeRelease() {
        guard let kv = lock.withLock({ state.mirror[keys.release] }) else { return }
        let release: FleetRelease
        do {
            release = try FleetRelease.decode(kv.value)
        } catch {
            lock.withLock { state.materialised = kv.modRevision }
            events(.releaseUnreadable(error.description))
            return
        }
        do {
            try release.materialise(at: options.releaseDirectory)
            // Only once written: a write that failed (a full disk) is tried again at the next change.
            lock.withLock { state.materialised = kv.modRevision }
            events(.log("release version \(release.version) (\(release.digest.prefix(19))…) in etcd: verifying it"))
        } catch {
            events(.log("cannot write the release from etcd to \(options.releaseDirectory): \(error); the release in force stays"))
        }
    }

    // MARK: - Leading

    /// As leader, with a release: places every replica, backup policy and monitor on the live
    /// nodes, and writes what changed, signed, in transactions that hold only while the `leader`
    /// key is still the one this node created (its epoch).
    func placeIfLeader() async {
        // One placement at a time; a request meanwhile makes the running one go again.
        let first = lock.withLock { () -> Bool in
            if state.placing {
                state.placeAgain = true
                return false
            }
            state.placing = true
            return true
        }
        guard first else { return }
        while true {
            await placeOnce()
            let again = lock.withLock { () -> Bool in
                if state.placeAgain {
                    state.placeAgain = false
                    return true
                }
                state.placing = false
                return false
            }
            if !again || Task.isCancelled { break }
        }
        lock.withLock { state.placing = false }
    }

    private func placeOnce() async {
        guard let (writes, deletes, epoch) = lock.withLock({ plan() }) else { return }
        if writes.isEmpty && deletes.isEmpty { return }
        var operations: [EtcdClient.Operation] = []
        for (workload, assignment) in writes {
            guard let sealed = try? FleetSigned.seal(assignment, type: FleetSigned.assignmentType, key: key) else { continue }
            operations.append(.put(keys.assignment(workload), sealed, lease: 0))
        }
        operations += deletes.map { .delete($0) }
        var start = 0
        while start < operations.count {
            let chunk = Array(operations[start..<min(start + 100, operations.count)])
            start += chunk.count
            do {
                let outcome = try await client.transaction([.createRevision(keys.leader, epoch)], success: chunk)
                guard outcome.succeeded else {
                    events(.log("no longer the leader (epoch \(epoch)): stopped writing assignments"))
                    return
                }
            } catch {
                failed("\(error)")
                return
            }
        }
        let moved = writes.filter { $0.1.epoch == epoch }.count
        events(.log("leader (epoch \(epoch)): wrote \(moved) assignment\(moved == 1 ? "" : "s"), removed \(deletes.count)"))
    }

    /// What the leader writes (under the lock); nil when this node does not lead.
    private func plan() -> (writes: [(Workload, Assignment)], deletes: [String], epoch: Int64)? {
        guard let leader = state.leader, leader.name == me, leader.lease == state.lease, let release = state.release,
            leader.epoch >= state.maxEpoch
        else { return nil }
        var current: [Placement.Slot: String] = [:]
        for (workload, assignment) in state.accepted { current[Self.slot(workload)] = assignment.node }
        let (target, unplaced) = Self.place(release.desired, on: Array(state.nodes.values), current: current, drains: state.drains)
        if unplaced != state.unplaced {
            state.unplaced = unplaced
            if !unplaced.isEmpty {
                events(.log("no live node matches \(unplaced.count) replica(s): "
                    + unplaced.prefix(5).map { "\($0.service)/\($0.index)" }.joined(separator: ", ")))
            }
        }
        var writes: [(Workload, Assignment)] = []
        for (workload, node) in target.sorted(by: { $0.key < $1.key }) {
            let assignment = Assignment(
                workload: workload, node: node, release: release.ref.digest, epoch: leader.epoch, leader: me, sequence: state.revision)
            // Also over a value in etcd that was not taken (forged, replayed, or not signed for its key).
            if !(state.accepted[workload]?.decides(as: assignment) ?? false) || state.rejected[keys.assignment(workload)] != nil {
                writes.append((workload, assignment))
            }
        }
        var deletes: [String] = []
        for key in state.mirror.keys.sorted() where key.hasPrefix(keys.assignments) {
            if case .assignment(let workload) = keys.parse(key), target[workload] != nil { continue }
            deletes.append(key)
        }
        return (writes, deletes, leader.epoch)
    }

    /// The leader's whole decision, pure: every replica (`Placement`), every backup policy (beside
    /// replica 0 of its `runOn` service, else placed as one replica of its own) and every monitor
    /// (one replica of its own), on `nodes`, keeping `current` where it may stay.
    static func place(
        _ desired: DesiredState, on records: [NodeRecord], current: [Placement.Slot: String], drains: [String: Set<String>] = [:]
    ) -> (target: [Workload: String], unplaced: [Placement.Slot]) {
        let nodes = records.sorted { $0.name < $1.name }.map { Placement.Node(name: $0.name, labels: $0.labels) }
        var services = desired.services.values.sorted { $0.metadata.name < $1.metadata.name }.map { service in
            // A drain is honoured only while another node can take the service: a drill never
            // leaves a replica without a node.
            var excluded = drains[service.metadata.name] ?? []
            if !nodes.contains(where: { node in
                !excluded.contains(node.name) && service.placement.allSatisfy { node.labels[$0.key] == $0.value }
            }) {
                excluded = []
            }
            return Placement.Service(
                name: service.metadata.name, replicas: service.replicas, selector: service.placement, spread: service.spread, excluded: excluded)
        }
        // Backup policies and monitors are placed as one replica each, under names no service has.
        for name in desired.backupPolicies.keys.sorted() where desired.backupPolicies[name]?.runOn == nil {
            services.append(Placement.Service(name: "backup/" + name, replicas: 1))
        }
        for name in desired.monitors.keys.sorted() { services.append(Placement.Service(name: "monitor/" + name, replicas: 1)) }
        let placed = Placement().place(services, on: nodes, current: current)
        var target: [Workload: String] = [:]
        for (slot, node) in placed.assignments {
            if slot.service.hasPrefix("backup/") {
                target[.backup(String(slot.service.dropFirst(7)))] = node
            } else if slot.service.hasPrefix("monitor/") {
                target[.monitor(String(slot.service.dropFirst(8)))] = node
            } else {
                target[.replica(service: slot.service, index: slot.index)] = node
            }
        }
        var unplaced = placed.unplaced
        for (name, policy) in desired.backupPolicies {
            guard let service = policy.runOn else { continue }
            if let node = placed.assignments[Placement.Slot(service: service, index: 0)] {
                target[.backup(name)] = node
            } else {
                unplaced.append(Placement.Slot(service: "backup/" + name, index: 0))
            }
        }
        return (target, unplaced.sorted())
    }

    static func slot(_ workload: Workload) -> Placement.Slot {
        switch workload {
        case .replica(let service, let index): Placement.Slot(service: service, index: index)
        case .backup(let name): Placement.Slot(service: "backup/" + name, index: 0)
        case .monitor(let name): Placement.Slot(service: "monitor/" + name, index: 0)
        }
    }

    // MARK: - Status

    /// Publishes this node's status when it changed (checked every 250 ms, with the lease's
    /// right to act), and, as leader, alerts on nodes whose lease expired.
    private func publishStatus() async {
        var last: NodeStatus?
        let replicas = ReplicaProvider(store: store)
        while !Task.isCancelled {
            checkMayAct()
            alertDepartures()
            if var status = status(replicas) {
                var compared = status
                compared.time = last?.time ?? ""
                if compared != last, lock.withLock({ state.lease != nil }) {
                    status.time = RFC3339.format(Date())
                    if let sealed = try? FleetSigned.seal(status, type: FleetSigned.statusType, key: key),
                        (try? await client.put(keys.status(me), sealed)) != nil
                    {
                        last = status
                    }
                }
            }
            await Self.sleep(0.25)
        }
    }

    private func status(_ replicas: ReplicaProvider) -> NodeStatus? {
        guard let records = try? replicas.records() else { return nil }
        let (release, acting, leader, share, primaries) = lock.withLock {
            (state.release?.ref, state.loaded && Self.now() < state.renewedUntil, state.leader?.name == me,
             FleetShare(cluster: keys.cluster, node: me, assignments: state.accepted),
             state.primaries.filter(\.value.promoted).sorted { $0.key < $1.key }.map {
                 NodeStatus.Primary(service: $0.key, index: $0.value.index, since: RFC3339.format($0.value.since), lastFailover: state.lastFailover[$0.key])
             })
        }
        var list: [NodeStatus.Replica] = []
        for (service, byIndex) in records.sorted(by: { $0.key < $1.key }) {
            for (index, record) in byIndex.sorted(by: { $0.key < $1.key }) {
                // A process found gone counts as gone before the loop has written its exit.
                let running = record.exitedAt == nil && ProcessTable.isAlive(record.pid, startTime: record.startTime)
                list.append(NodeStatus.Replica(
                    service: service, index: index, pid: record.pid,
                    state: !running ? "exited" : record.healthFailures > 0 ? "unhealthy" : "running", port: record.port,
                    healthy: running && record.healthFailures == 0 && (record.lastCheck.map { $0 > record.startedAt } ?? false)))
            }
        }
        return NodeStatus(
            node: me, time: "", release: release?.digest ?? "", releaseVersion: release?.version ?? 0, acting: acting, leader: leader,
            replicas: list,
            backups: share.backups, monitors: share.monitors,
            auditLog: "\(ProcessInfo.processInfo.hostName):\(auditFolder)", auditEntries: auditCount(),
            primaries: primaries, corrections: lock.withLock { state.corrections.isEmpty ? nil : state.corrections })
    }

    /// As leader: each node whose lease expired is alerted on once, and resolved when it returns.
    private func alertDepartures() {
        let (down, back) = lock.withLock { () -> ([String], [String]) in
            guard state.leader?.name == me, state.leader?.lease == state.lease else {
                // No longer leading: what this node raised is resolved here (the new leader raises
                // what still holds).
                defer { state.alertedDown = [] }
                return ([], state.alertedDown.sorted())
            }
            let down = state.departed.subtracting(state.alertedDown).sorted()
            let back = state.alertedDown.subtracting(state.departed).sorted()
            state.alertedDown.formUnion(down)
            state.alertedDown.subtract(back)
            return (down, back)
        }
        for name in down { events(.nodeDown(name)) }
        for name in back { events(.nodeBack(name)) }
    }
}
