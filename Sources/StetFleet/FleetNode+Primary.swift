public import Foundation
public import StetAudit
public import StetCore
import StetCrypto
import StetProviders
public import StetState

/// Active/passive services (`spec.failover`, docs/architecture.md "Primary failover"): among a
/// service's replicas across the fleet exactly one is the primary. The node whose replica it is
/// holds `primary/SERVICE`, created with a transaction under its own lease; the key's create
/// revision is the primary's fencing token.
///
/// The rules, each checked every 50 ms:
/// - **Fencing.** A node stops being primary (demote, or stop when `fence: stop` or the demote
///   fails) once `fenceMargin` is all that is left of its lease as it last proved it (the send
///   time of its last renewal plus the TTL): before etcd can have let the key go, so two
///   primaries never overlap, even when the node is cut off but alive.
/// - **Losing the key** (deleted, or created by another lease): demote at once.
/// - **A failing primary** (its replica exited, replaced, or failed its health check
///   `failureThreshold` times in a row): demote, then delete the key so a standby takes over.
/// - **A switchover** (`switchover/SERVICE`, signed by an operator key): demote, then delete the key;
///   only the requested node bids while the request stands.
/// - **Bidding.** A node that may act, with a healthy replica and no primary in etcd, creates the
///   key and only then promotes. Nodes whose labels match `spec.failover.prefer` bid at once,
///   others after `preferenceDelay`; among equals, the replica checked most recently bids first.
extension FleetNode {
    /// What this node holds: it created `primary/SERVICE` at `revision` for replica `index`.
    struct HeldPrimary: Sendable {
        var index: Int
        var revision: Int64
        /// The lease the key was created on: another lease (the node joined again) means the key
        /// went with the old one.
        var lease: Int64
        /// The promote command has run.
        var promoted = false
        var pid: Int32
        var startTime: UInt64
        var since: Date
        var service: Service
    }

    /// How long a standby whose node does not match `prefer` waits before it bids.
    static let preferenceDelay = 0.5
    /// After giving the role up (a failing replica, a failed promote), a node waits this long
    /// before it bids for the same service again, so a healthier standby takes it.
    public static let cooldown = 3.0
    /// Of the fence margin, what is kept for killing the replica after a demote that ran out.
    static let killReserve = 0.15

    /// Runs until cancelled: first fences whatever this node was primary of before it started (it
    /// cannot know whether that still holds), then keeps the primaries every 50 ms.
    func keepPrimaries() async {
        let replicas = ReplicaProvider(store: store)
        let backstop = HardFence(node: self)
        backstop.start()
        defer { backstop.stop() }
        await fenceLeftovers(replicas)
        while !Task.isCancelled {
            await keepPrimariesOnce(replicas)
            await Self.sleep(0.05)
        }
        // Stopping: every primary is demoted and its key freed before `run()` returns, on a task
        // of its own (this one is cancelled), within what is left of the lease.
        if options.stepDownOnStop { await Task.detached { await self.stepDownAll(replicas, why: "Stet is stopping") }.value }
    }

    /// Gives up every primary held: demote (or stop), then free the key.
    func stepDownAll(_ replicas: ReplicaProvider, why: String) async {
        for (name, held) in lock.withLock({ state.primaries }).sorted(by: { $0.key < $1.key }) {
            await letGo(name, held, why: .release(why), replicas)
        }
    }

    /// The last line of fencing, on a thread of its own that never waits for anything else: once
    /// only `killReserve` is left of the lease the node last proved, every replica still held as
    /// primary gets SIGKILL, whatever the keeper is busy with (a slow demote of another service, an
    /// etcd request, an fsync).
    final class HardFence: @unchecked Sendable {
        private weak var node: FleetNode?
        private let stopped = NSLock()
        private var running = true
        init(node: FleetNode) { self.node = node }

        func start() {
            let thread = Thread { [self] in
                while stopped.withLock({ running }) {
                    node?.hardFencePass()
                    usleep(10_000)
                }
            }
            thread.name = "stet-hard-fence"
            thread.start()
        }

        func stop() { stopped.withLock { running = false } }
    }

    func hardFencePass() {
        let now = Self.now()
        let reserve = UInt64(Self.killReserve * 1e9)
        let due = lock.withLock { () -> [(String, HeldPrimary)] in
            guard !state.primaries.isEmpty, now &+ reserve >= state.renewedUntil else { return [] }
            return state.primaries.filter { !state.hardFenced.contains($0.key) }.map { ($0.key, $0.value) }
        }
        for (name, held) in due where ProcessTable.isAlive(held.pid, startTime: held.startTime) {
            ProcessTable.signalReplica(held.pid, SIGKILL)
            lock.withLock { _ = state.hardFenced.insert(name) }
            events(.log("primary of \(name): replica \(held.index) killed (pid \(held.pid)): the lease was about to end before it was demoted"))
        }
    }

    // MARK: - One pass

    private func keepPrimariesOnce(_ replicas: ReplicaProvider) async {
        var view = lock.withLock { primaryView() }
        // A newer release's spec (its demote command, fence, timeout) applies to a primary held since before it.
        var refreshed = false
        for (name, held) in view.held {
            if let service = view.services.first(where: { $0.metadata.name == name }), service != held.service {
                view.held[name]?.service = service
                lock.withLock { state.primaries[name]?.service = service }
                refreshed = true
            }
        }
        if refreshed { savePrimaries() }
        for (name, held) in view.held.sorted(by: { $0.key < $1.key }) {
            // The time and the lease read again for each: the one before may have taken a while.
            let fenceAt = lock.withLock { fenceDeadline() }
            if let why = reasonToLetGo(name, held, view, replicas, now: Self.now(), fenceAt: fenceAt) {
                await letGo(name, held, why: why, replicas)
            }
        }
        for service in view.services where view.held[service.metadata.name] == nil {
            let (mayAct, fenceAt) = lock.withLock { (state.loaded && Self.now() < state.renewedUntil, fenceDeadline()) }
            // Only with time to promote before the fence point.
            guard mayAct, Self.now() < fenceAt else { return }
            await considerBid(service, view, replicas, now: Self.now())
        }
    }

    /// What one pass looks at, read under the lock.
    struct PrimaryView {
        var services: [Service] = []
        var held: [String: HeldPrimary] = [:]
        /// `primary/SERVICE` as etcd holds it: the record when it verifies, and its create revision.
        var keys: [String: (record: PrimaryRecord?, createRevision: Int64)] = [:]
        var requests: [String: SwitchoverRequest] = [:]
        var mine: [String: [Int]] = [:]
        var lease: Int64?
        var revision: Int64 = 0
        var labels: [String: String] = [:]
    }

    /// Under the lock.
    private func primaryView() -> PrimaryView {
        var view = PrimaryView()
        view.services = (state.release?.desired.services.values.filter { $0.failover != nil } ?? []).sorted { $0.metadata.name < $1.metadata.name }
        view.held = state.primaries
        // Only the keys of the release's active/passive services are looked at: what else an etcd
        // writer puts under primary/ or switchover/ costs nothing.
        for service in view.services {
            let name = service.metadata.name
            if let kv = state.mirror[keys.primary(name)] { view.keys[name] = (verifiedPrimary(kv, service: name), kv.createRevision) }
            if let kv = state.mirror[keys.switchover(name)], kv.lease != 0,
                case .success(let (request, _)) = FleetSigned.open(
                    kv.value, type: FleetSigned.switchoverType, as: SwitchoverRequest.self, trust: trust, role: .operator),
                request.service == name, request.cluster == keys.cluster
            {
                view.requests[name] = request
            }
        }
        for (workload, assignment) in state.accepted where assignment.node == me {
            if case .replica(let service, let index) = workload { view.mine[service, default: []].append(index) }
        }
        view.lease = state.lease
        view.revision = state.revision
        view.labels = options.labels
        return view
    }

    /// The moment this node must have stopped being primary (monotonic ns): the last proof of the
    /// lease less the fence margin. Zero when the lease is not proven (under the lock).
    func fenceDeadline() -> UInt64 {
        let margin = UInt64(options.fenceMargin * 1e9)
        return state.renewedUntil > margin ? state.renewedUntil - margin : 0
    }

    /// The record of `primary/SERVICE` when it verifies (under the lock).
    func verifiedPrimary(_ kv: EtcdClient.KeyValue, service: String) -> PrimaryRecord? {
        PrimaryRecord.verified(kv.value, lease: kv.lease, service: service, trust: trust) { state.nodes[$0]?.keyID }
    }

    // MARK: - Holding

    /// Why this node must stop being primary of `name` now, or nil.
    private func reasonToLetGo(_ name: String, _ held: HeldPrimary, _ view: PrimaryView, _ replicas: ReplicaProvider, now: UInt64, fenceAt: UInt64) -> LetGo? {
        if now >= fenceAt { return .fence("the fleet lease was not renewed in time: fencing before it can expire") }
        if view.lease != held.lease { return .lost("the lease primary/\(name) was created on is gone") }
        if let key = view.keys[name] {
            if key.createRevision != held.revision { return .lost("primary/\(name) in etcd is no longer this node's") }
        } else if view.revision > held.revision {
            return .lost("primary/\(name) was deleted from etcd")
        }
        guard let service = view.services.first(where: { $0.metadata.name == name }) else {
            return .release("service \(name) is no longer an active/passive service of the release")
        }
        guard view.mine[name]?.contains(held.index) ?? false else {
            return .release("replica \(held.index) of \(name) is no longer assigned to this node")
        }
        let record: ReplicaProvider.Record?
        var readError = ""
        do { record = try replicas.record(name, held.index) } catch { record = nil; readError = " (\(error))" }
        guard let record, record.pid == held.pid, record.startTime == held.startTime, record.exitedAt == nil,
            ProcessTable.isAlive(record.pid, startTime: record.startTime)
        else {
            let seen = record.map { $0.pid != held.pid || $0.startTime != held.startTime ? "replaced by pid \($0.pid)" : "pid \($0.pid) exited" } ?? "no record\(readError)"
            return .release("the primary replica \(held.index) of \(name) is no longer running (\(seen))")
        }
        if let threshold = service.health?.failureThreshold, record.healthFailures >= threshold {
            return .release("the primary replica \(held.index) of \(name) failed its health check \(record.healthFailures) times")
        }
        // A switchover moves this very tenure of the role: the request names the key's creation.
        if let request = view.requests[name], request.fromRevision == held.revision, request.to != me {
            return .release("switchover requested" + (request.to.map { " to node \($0)" } ?? ""))
        }
        return nil
    }

    enum LetGo {
        /// The lease is not proven: demote (or stop) before it can expire; etcd may be unreachable.
        case fence(String)
        /// The key is gone or another's: demote at once.
        case lost(String)
        /// Give the role up: demote, then delete the key for a standby to take.
        case release(String)

        var reason: String {
            switch self {
            case .fence(let why), .lost(let why), .release(let why): why
            }
        }
    }

    func letGo(_ name: String, _ held: HeldPrimary, why: LetGo, _ replicas: ReplicaProvider) async {
        let fencing: Bool
        if case .fence = why { fencing = true } else { fencing = false }
        events(.log("primary of \(name) (replica \(held.index)): \(why.reason)"))
        await step(down: held, service: held.service, cause: fencing ? "fencing" : "failover", reason: why.reason,
                   stopAtOnce: fencing && held.service.failover?.fence == .stop, replicas)
        lock.withLock {
            state.primaries[name] = nil
            state.hardFenced.remove(name)
            state.cooldown[name] = Self.now() &+ UInt64(Self.cooldown * 1e9)
        }
        _ = savePrimaries()
        // Demoted: the key may go, for a standby to take. Only the key this node created; a fenced
        // node may not reach etcd, and then the key goes with its lease.
        if case .lost = why { return }
        _ = try? await client.transaction([.createRevision(keys.primary(name), held.revision)], success: [.delete(keys.primary(name))])
    }

    /// The latest moment (BootClock ns) a promote may still run: the fence point.
    func promoteLimit() -> UInt64 { lock.withLock { fenceDeadline() } }

    /// The latest moment (BootClock ns) a demote may still run: the lease the node last proved,
    /// less what killing the replica takes.
    func demoteLimit() -> UInt64 {
        let reserve = UInt64(Self.killReserve * 1e9)
        return lock.withLock { state.renewedUntil > reserve ? state.renewedUntil - reserve : 0 }
    }

    /// Demotes replica `held.index` (bounded by the service's timeout and by the lease), and stops
    /// it when the demote fails, runs out of time, there is no demote command, or `stopAtOnce`.
    /// Each an audited action.
    private func step(
        down held: HeldPrimary, service: Service, cause: String, reason: String, stopAtOnce: Bool, _ replicas: ReplicaProvider
    ) async {
        let failover = service.failover ?? Service.Failover()
        var stop = stopAtOnce || failover.demote.isEmpty
        if !stop {
            let outcome = await audited("demote", service: service, index: held.index, cause: cause, reason: reason) {
                await replicas.runRoleCommand(service, held.index, failover.demote, role: "standby", timeout: failover.timeout.seconds) {
                    [weak self] in self?.demoteLimit() ?? 0
                }
            }
            stop = !outcome.ok
        }
        if stop {
            _ = await audited("fence-stop", service: service, index: held.index, cause: cause, reason: reason) {
                // Killed at once: a stop that waits could outlast the lease.
                (try? replicas.stop(service.metadata.name, held.index, signalName: "SIGKILL", timeout: 1))
                    ?? .failed("cannot stop replica \(held.index)")
            }
        }
    }

    // MARK: - Bidding

    private func considerBid(_ service: Service, _ view: PrimaryView, _ replicas: ReplicaProvider, now: UInt64) async {
        let name = service.metadata.name
        if let key = view.keys[name] {
            lock.withLock {
                state.absentSince[name] = nil
                if let holder = key.record?.node { state.lastHolder[name] = holder }
            }
            // A key of this node's that it does not hold (fenced, then a late renewal kept the
            // lease; or a bid whose answer was lost) would block every other node: freed.
            if key.record?.node == me {
                _ = try? await client.transaction([.createRevision(keys.primary(name), key.createRevision)], success: [.delete(keys.primary(name))])
            }
            return
        }
        let since = lock.withLock { () -> UInt64 in
            if let since = state.absentSince[name] { return since }
            state.absentSince[name] = now
            return now
        }
        if let until = lock.withLock({ state.cooldown[name] }), now < until { return }
        if lock.withLock({ state.primariesUnreadable }) { return }
        guard let lease = view.lease, let (index, record) = healthiestReplica(service, view.mine[name] ?? [], replicas) else { return }
        var delay = 0.0
        if let request = view.requests[name], let target = request.to {
            // A switchover to another node: only that node bids while the request stands.
            guard target == me else { return }
        } else {
            let prefer = service.failover?.prefer ?? [:]
            if !prefer.allSatisfy({ view.labels[$0.key] == $0.value }) { delay += Self.preferenceDelay }
            // Among equals, the freshest health first: up to 0.2 s later per second since the last check.
            let age = record.lastCheck.map { max(0, Date().timeIntervalSince($0)) } ?? 1
            delay += min(age, 1) * 0.2
        }
        guard Double(now &- since) / 1e9 >= delay else { return }
        await bid(service, index: index, record: record, lease: lease, absentSince: since, replicas)
    }

    /// The lowest replica of `indices` on this node that runs and is healthy: its last health
    /// check passed (or it has none), and it is past its start.
    private func healthiestReplica(_ service: Service, _ indices: [Int], _ replicas: ReplicaProvider) -> (Int, ReplicaProvider.Record)? {
        for index in indices.sorted() {
            guard let record = try? replicas.record(service.metadata.name, index), record.exitedAt == nil, record.pid > 0,
                ProcessTable.isAlive(record.pid, startTime: record.startTime)
            else { continue }
            if service.health != nil, record.lastCheck == nil || record.healthFailures > 0 { continue }
            return (index, record)
        }
        return nil
    }

    private func bid(
        _ service: Service, index: Int, record: ReplicaProvider.Record, lease: Int64, absentSince: UInt64, _ replicas: ReplicaProvider
    ) async {
        let name = service.metadata.name
        let claim = PrimaryRecord(service: name, node: me, index: index, lease: lease, since: RFC3339.format(Date(), milliseconds: true))
        guard let sealed = try? FleetSigned.seal(claim, type: FleetSigned.primaryType, key: key),
            let created = try? await client.transaction([.absent(keys.primary(name))], success: [.put(keys.primary(name), sealed, lease: lease)]),
            created.succeeded
        else { return }
        // Ours, as the key's create revision says. Kept (and written down) before the promote, so
        // a restart in between still fences it.
        let held = HeldPrimary(
            index: index, revision: created.revision, lease: lease, pid: record.pid, startTime: record.startTime, since: Date(), service: service)
        let from = lock.withLock { () -> String? in
            state.primaries[name] = held
            state.absentSince[name] = nil
            return state.lastHolder[name]
        }
        let saved = savePrimaries()
        let failover = service.failover ?? Service.Failover()
        let reason = "primary/\(name) was free" + (from.map { " (was node \($0))" } ?? "") + ": this node's replica \(index) takes over"
        let outcome = await audited("promote", service: service, index: index, cause: "failover", reason: reason) {
            // Never a primary that a restart would not know to fence.
            guard saved else { return .failed("the node's primaries could not be written to \(store.root)") }
            // The fencing token, for a service that can refuse writes from an older primary; the
            // promote ends by the fence point at the latest.
            return await replicas.runRoleCommand(
                service, index, failover.promote, role: "primary", timeout: failover.timeout.seconds,
                environment: ["STET_FENCE_TOKEN": String(created.revision)]) { [weak self] in self?.promoteLimit() ?? 0 }
        }
        guard outcome.ok else {
            events(.log("primary of \(name): the promote of replica \(index) failed: \(outcome.error ?? outcome.detail); giving the role up"))
            await letGo(name, held, why: .release("its promote failed"), replicas)
            return
        }
        let tookMs = Int(min(Double(Int.max / 2), Double(Self.now() &- absentSince) / 1e6))
        lock.withLock {
            state.primaries[name]?.promoted = true
            state.lastFailover[name] = FailoverRecord(from: from, to: me, index: index, at: RFC3339.format(Date()), durationMs: tookMs)
        }
        _ = savePrimaries()
        events(.log("primary of \(name): replica \(index) on this node is the primary (\(tookMs) ms after primary/\(name) was free)"))
    }

    // MARK: - Audit and state

    /// Records the intent, runs `body`, records its result. A failed intent record stops a promote
    /// (nothing happens that the log cannot show) but never a demote or a fence: those keep the
    /// fleet safe, and their result is recorded if the log takes it.
    private func audited(
        _ action: String, service: Service, index: Int, cause: String, reason: String,
        _ body: () async -> ActionOutcome
    ) async -> ActionOutcome {
        let release = lock.withLock { state.release?.ref } ?? .none
        let resource = "service/\(service.metadata.name)/\(index)"
        do {
            try audit(AuditRecord(kind: .intent, release: release, resource: resource, action: action, cause: cause, reason: reason))
        } catch {
            events(.log("cannot record the intent to \(action) \(resource) in the audit log: \(error)"))
            if action == "promote" { return .failed("the audit log did not take the intent: \(error)") }
        }
        let started = Self.now()
        let outcome = await body()
        let ms = Int(min(Double(Int.max / 2), Double(Self.now() &- started) / 1e6))
        do {
            try audit(AuditRecord(
                kind: .result, release: release, resource: resource, action: action, cause: cause, reason: reason,
                outcome: outcome.ok ? .ok : .failed, error: outcome.ok ? nil : outcome.error ?? outcome.detail, durationMs: ms))
        } catch {
            events(.log("cannot record the result of \(action) \(resource) in the audit log: \(error)"))
        }
        return outcome
    }

    /// `fleet/primary.json`: the primaries this node holds (with the service, so a restarted node
    /// can fence them before it knows the release) and the last failover of each service it took.
    @discardableResult
    func savePrimaries() -> Bool {
        let (held, failovers) = lock.withLock { (state.primaries, state.lastFailover) }
        let roles = PrimaryRoles(
            held: held.mapValues {
                PrimaryRoles.Held(index: $0.index, revision: $0.revision, pid: $0.pid, startTime: $0.startTime,
                                  since: RFC3339.format($0.since), service: $0.service, promoted: $0.promoted)
            }, lastFailover: failovers)
        do {
            try store.write(PrimaryRoles.key, try JSONCoding.encoder.encode(roles))
            return true
        } catch {
            events(.log("cannot keep this node's primaries in \(store.root): \(error)"))
            return false
        }
    }

    /// At start: a primary this node held before it (re)started is demoted, by its recorded spec,
    /// before the old lease can have expired (its last renewal was before this process started),
    /// else stopped. A file that cannot be read fails closed: nothing is promoted until it can.
    private func fenceLeftovers(_ replicas: ReplicaProvider) async {
        guard let data = try? store.read(PrimaryRoles.key) else { return }
        guard let roles = try? JSONCoding.decoder.decode(PrimaryRoles.self, from: data) else {
            events(.log("\(store.path(PrimaryRoles.key)) cannot be read: this node promotes nothing until it is removed or repaired"))
            lock.withLock { state.primariesUnreadable = true }
            return
        }
        lock.withLock { state.lastFailover = roles.lastFailover }
        let limit = startedAt &+ UInt64(max(0, Double(options.leaseTTL) - options.fenceMargin) * 1e9)
        for (name, held) in roles.held.sorted(by: { $0.key < $1.key }) where held.service.metadata.name == name {
            guard let record = try? replicas.record(name, held.index), record.pid == held.pid, record.startTime == held.startTime,
                ProcessTable.isAlive(record.pid, startTime: record.startTime)
            else { continue }
            events(.log("primary of \(name) (replica \(held.index)) from before this start: demoting it until the fleet decides again"))
            let service = held.service
            let failover = service.failover ?? Service.Failover()
            var stop = failover.demote.isEmpty
            if !stop {
                let outcome = await audited("demote", service: service, index: held.index, cause: "fencing",
                                            reason: "Stet started again: a primary from before is not proven") {
                    await replicas.runRoleCommand(service, held.index, failover.demote, role: "standby", timeout: failover.timeout.seconds) { limit }
                }
                stop = !outcome.ok
            }
            if stop {
                _ = await audited("fence-stop", service: service, index: held.index, cause: "fencing",
                                  reason: "Stet started again: a primary from before is not proven") {
                    (try? replicas.stop(name, held.index, signalName: "SIGKILL", timeout: 1)) ?? .failed("cannot stop replica \(held.index)")
                }
            }
        }
        _ = savePrimaries()
    }
}

/// The last failover of a service that this node took over.
public struct FailoverRecord: Codable, Sendable, Equatable {
    public var from: String?
    public var to: String
    public var index: Int
    public var at: String
    /// From when this node saw `primary/SERVICE` free until its replica was promoted.
    public var durationMs: Int
}

/// `fleet/primary.json` in a node's state directory.
public struct PrimaryRoles: Codable, Sendable {
    public static let key = "fleet/primary.json"

    public struct Held: Codable, Sendable {
        public var index: Int
        public var revision: Int64
        public var pid: Int32
        public var startTime: UInt64
        public var since: String
        public var service: Service
        public var promoted: Bool?
    }

    public var held: [String: Held]
    public var lastFailover: [String: FailoverRecord]

    public static func load(from store: any StateStore) -> PrimaryRoles? {
        guard let data = try? store.read(key) else { return nil }
        return try? JSONCoding.decoder.decode(PrimaryRoles.self, from: data)
    }
}
