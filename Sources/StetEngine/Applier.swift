public import Foundation
public import StetAudit
public import StetCore
import StetCrypto
import StetProviders
public import StetState

/// Carries out a plan through a provider (docs/architecture.md, "Plan, apply and the loop"): resources in the plan's order
/// by kind, several resources of a kind at once (bounded), each resource's changes in order,
/// replacements of a service in waves of `maxUnavailable`, each waiting for health. A failed
/// change stops the rest of its resource. Every action gets an `intent` entry before it starts
/// and a `result` entry after; an intent left without a result by a crash is recorded as
/// `interrupted` by `recoverInterrupted` at the next start.
public struct Applier: Sendable {
    public let provider: any Provider
    public let audit: any AuditSink
    public let store: any StateStore
    public let release: ReleaseRef
    /// Resources worked on at once.
    public var concurrency = 4
    /// Actions whose failure does not stop the rest of their resource.
    static let independent: Set<ChangeAction> = [.backup(.forget), .backup(.check), .backup(.restoreTest)]

    /// Hears each action as it starts, what it reports while it runs (`ActionProgress`), and
    /// its end: for progress on a terminal or in CI. Never used to decide anything.
    public var events: @Sendable (Event) -> Void = { _ in }

    /// Entries that go into the log with a change's intent, in the same append (one fsync), by
    /// change id: the drift a correction corrects (`Reconciler.Admission.drift`).
    public var preceding: [String: AuditRecord] = [:]

    /// The change ids whose intent this applier appended (with their `preceding` entries).
    public let intents = AppendedIntents()

    /// Serialises updates of status files from concurrent changes.
    private let statusLock = StatusLock()

    public init(provider: any Provider, audit: any AuditSink, store: any StateStore, release: ReleaseRef) {
        self.provider = provider
        self.audit = audit
        self.store = store
        self.release = release
    }

    public struct Result: Sendable {
        public let change: Change
        public let outcome: ActionOutcome
        public let seconds: Double
        /// When the action ended.
        public var endedAt = Date()

        public init(change: Change, outcome: ActionOutcome, seconds: Double, endedAt: Date = Date()) {
            self.change = change
            self.outcome = outcome
            self.seconds = seconds
            self.endedAt = endedAt
        }
    }

    public struct Report: Sendable {
        public var results: [Result] = []
        /// Changes not tried because an earlier change of their resource failed.
        public var skipped: [Change] = []
        /// The waits for readiness after the changes (`awaitReady`): each names the change it
        /// waited for.
        public var waited: [Result] = []
        public var failed: Bool { results.contains { !$0.outcome.ok } || waited.contains { !$0.outcome.ok } }

        public init() {}
    }

    /// One moment of an action, in order: `started` (after its intent entry), any number of
    /// `running` (what it reports of itself), `ended` (after its result entry).
    public enum Event: Sendable {
        case started(Action)
        case running(Action, String)
        case ended(Action, ActionOutcome, seconds: Double)
    }

    /// Applies `plan`'s changes; `progress` hears each change as it ends.
    public func apply(_ plan: Plan, desired: DesiredState, progress: @escaping @Sendable (Result) -> Void = { _ in }) async throws -> Report {
        var report = Report()
        let byResource = Dictionary(grouping: plan.changes, by: \.resource.whole)
        // Kinds in plan order; resources of one kind concurrently, at most `concurrency` at once.
        var kinds: [ResourceKind] = []
        for change in plan.changes where !kinds.contains(change.resource.kind) {
            kinds.append(change.resource.kind)
        }
        for kind in kinds {
            var resources: [ResourceID] = []
            for change in plan.changes where change.resource.kind == kind && !resources.contains(change.resource.whole) {
                resources.append(change.resource.whole)
            }
            // A lone resource is applied in this task: a child task would wait for a thread to
            // take it up, and a replica's replacement would wait with it.
            if resources.count == 1 {
                let partial = try await applyResource(byResource[resources[0]] ?? [], plan: plan, desired: desired, progress: progress)
                report.results += partial.results
                report.skipped += partial.skipped
                continue
            }
            var pending = resources[...]
            try await withThrowingTaskGroup(of: Report.self) { group in
                func launch() {
                    guard let resource = pending.popFirst() else { return }
                    group.addTask {
                        try await applyResource(byResource[resource] ?? [], plan: plan, desired: desired, progress: progress)
                    }
                }
                for _ in 0..<concurrency { launch() }
                while let partial = try await group.next() {
                    report.results += partial.results
                    report.skipped += partial.skipped
                    launch()
                }
            }
        }
        return report
    }

    private func applyResource(_ changes: [Change], plan: Plan, desired: DesiredState, progress: @escaping @Sendable (Result) -> Void)
        async throws -> Report
    {
        var report = Report()
        var index = 0
        while index < changes.count {
            // Consecutive replacements go in waves of maxUnavailable; everything else one by one.
            var wave = [changes[index]]
            if changes[index].action == .service(.replaceReplica) {
                let width = max(1, desired.services[changes[index].resource.name]?.maxUnavailable ?? 1)
                while wave.count < width, index + wave.count < changes.count,
                    changes[index + wave.count].action == .service(.replaceReplica)
                {
                    wave.append(changes[index + wave.count])
                }
            }
            let results: [Result]
            if wave.count == 1 {
                // A lone change runs in this task, as a lone resource does (`apply`).
                let result = try await perform(wave[0], plan: plan, desired: desired)
                progress(result)
                results = [result]
            } else {
                results = try await withThrowingTaskGroup(of: Result.self) { group in
                    for change in wave { group.addTask { try await perform(change, plan: plan, desired: desired) } }
                    var results: [Result] = []
                    while let result = try await group.next() {
                        progress(result)
                        results.append(result)
                    }
                    return results.sorted { $0.change.id < $1.change.id }
                }
            }
            report.results += results
            index += wave.count
            // A failure stops the changes that build on it. A failed forget, check or restore
            // test does not: the verifications after it are independent of it.
            let failed = results.filter { !$0.outcome.ok }.map(\.change.action)
            if failed.contains(where: { !Self.independent.contains($0) }) {
                report.skipped += changes[index...]
                break
            }
        }
        return report
    }

    private func perform(_ change: Change, plan: Plan, desired: DesiredState) async throws -> Result {
        let action = Action(
            id: change.id, plan: plan.id, resource: change.resource.whole, action: change.action.rawValue, cause: change.cause.rawValue,
            reason: change.reason.message)
        // A replica start leaves the signed head to its result, a few milliseconds later: the
        // spawn waits for the intent's fsync only. Longer actions keep the head with the intent.
        let (outcome, seconds) = try await run(
            action, after: preceding[change.id].map { [$0] } ?? [], headWithResult: change.action == .service(.startReplica),
            waitsForIntent: provider.waitsForIntent(of: change)
        ) {
            await provider.perform(change, desired: desired)
        }
        return Result(change: change, outcome: outcome, seconds: seconds)
    }

    /// One action as the audit log and the state directory record it: the change of a plan, or
    /// an action an operator asked for outside a plan (`stet restore`).
    public struct Action: Sendable {
        /// Unique among the actions in flight: a change id (`Service/web#0:start-replica`).
        public var id: String
        public var plan: String?
        public var resource: ResourceID
        public var action: String
        public var cause: String?
        public var reason: String

        public init(id: String, plan: String? = nil, resource: ResourceID, action: String, cause: String? = nil, reason: String) {
            self.id = id
            self.plan = plan
            self.resource = resource
            self.action = action
            self.cause = cause
            self.reason = reason
        }
    }

    /// The one path of every action: an in-flight marker and then an `intent` entry before
    /// `body` runs, a `result` entry after, then the resource's last action in its status. A
    /// crash in between leaves the marker, which the next start records as `interrupted`
    /// (`recoverInterrupted`); with `headWithResult` (a replica start) the spawn waits for the
    /// intent's fsync alone, and the marker's fsync follows the spawn. A `body` that
    /// `waitsForIntent` itself (`ActionBegun.mayBegin`, `Provider.waitsForIntent`) runs while that
    /// fsync does; any other runs once the intent is durable. Returns the outcome and the seconds
    /// it took. `preceding` entries are appended with the intent, in one append.
    public func run(
        _ action: Action, after preceding: [AuditRecord] = [], headWithResult: Bool = false, waitsForIntent: Bool = false,
        _ body: () async -> ActionOutcome
    ) async throws -> (ActionOutcome, Double) {
        let intent = preceding + [AuditRecord(
            kind: .intent, release: release, plan: action.plan, change: action.plan == nil ? nil : action.id,
            resource: action.resource.description, action: action.action, cause: action.cause, reason: action.reason)]
        // The marker comes before the intent: Stet killed between the two leaves a marker without
        // an intent (recorded as interrupted; nothing ran), never an intent nothing will end.
        let marker = Self.inflightKey(action.id)
        let inflight = try JSONCoding.encoder.encode(Inflight(
            plan: action.plan, change: action.plan == nil ? nil : action.id, resource: action.resource.description, action: action.action))
        if headWithResult {
            // Only the intent is waited for before the action: the marker is in place for a Stet
            // started after this one is killed, and made to outlast a power loss the moment the
            // action has begun (`ActionBegun`: right after the spawn). Synced on another thread
            // beside the spawn, its journal commit held up the spawn's own writes.
            try store.stage(marker, inflight)
        } else {
            try store.write(marker, inflight)
        }
        // A failed append leaves the marker: the intent may have reached the log before the
        // failure, and a marker without an intent is only an `interrupted` that ran nothing.
        let sync: AuditSync
        if headWithResult {
            sync = try audit.appendBeforeAction(intent, now: Date())
        } else {
            try audit.append(intent, now: Date())
            sync = .durable
        }
        // As after a failed append, an intent that did not become durable leaves the marker.
        if !waitsForIntent { try sync.wait() }
        let started = DispatchTime.now().uptimeNanoseconds
        let events = events
        events(.started(action))
        // A marker that cannot be synced is removed once the result is written, a moment later.
        let begun = headWithResult ? ActionBegun.Listener(permit: { try sync.wait() }) { [store] in try? store.sync(marker) } : nil
        let outcome = await ActionBegun.$listener.withValue(begun) {
            await ActionProgress.$reporter.withValue(ActionProgress.Listener { events(.running(action, $0)) }) { await body() }
        }
        // A provider that never said its action began (it failed first) is heard here.
        begun?.tell()
        // An intent that did not become durable was cut off the log again, and the provider,
        // which waits for it, changed nothing: as after a failed append, this throws and leaves
        // the marker.
        try sync.wait()
        intents.insert(action.id)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        try audit.append(AuditRecord(
            kind: .result, release: release, plan: action.plan, change: action.plan == nil ? nil : action.id,
            resource: action.resource.description, action: action.action, cause: action.cause, reason: outcome.ok ? outcome.detail : nil,
            outcome: outcome.ok ? .ok : .failed, error: outcome.error, durationMs: Int(saturating: seconds * 1000)))
        try? store.remove(marker)
        try statusLock.withLock {
            try ResourceStatus.update(action.resource, in: store) { status in
                status.lastAction = action.id
                status.lastOutcome = outcome.ok ? "ok" : "failed"
                status.lastError = outcome.error
                status.lastAt = Date()
            }
        }
        events(.ended(action, outcome, seconds: seconds))
        return (outcome, seconds)
    }

    final class StatusLock: @unchecked Sendable {
        private let lock = NSLock()
        func withLock<T>(_ body: () throws -> T) rethrows -> T { try lock.withLock(body) }
    }

    // MARK: - Interrupted actions

    struct Inflight: Codable {
        var plan: String?
        var change: String?
        var resource: String
        var action: String
    }

    static let inflightFolder = "inflight"

    static func inflightKey(_ id: String) -> String {
        inflightFolder + "/" + String(id.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }) + ".json"
    }

    /// Records every action that began (intent written) but never ended as `interrupted`, then
    /// forgets it: the next observation decides what is still needed. Returns how many. Also
    /// removes what a killed Stet left under temporary names beside the markers and the replica
    /// records (`StateStore.removeLeftovers`), which the path to a replica's start writes most.
    @discardableResult
    public static func recoverInterrupted(store: any StateStore, audit: any AuditSink, release: ReleaseRef) throws -> Int {
        try store.removeLeftovers(in: inflightFolder)
        try ReplicaProvider.removeLeftovers(in: store)
        return try recoverMarkers(in: inflightFolder, as: Inflight.self, store: store, audit: audit) { inflight in
            AuditRecord(
                kind: .result, release: release, plan: inflight?.plan, change: inflight?.change, resource: inflight?.resource,
                action: inflight?.action,
                reason: "stet stopped before this action ended; the world is observed again", outcome: .interrupted)
        }
    }

    /// Records each marker left in `folder` (decoded as `Marker`, nil when it cannot be) with the
    /// entry `record` makes of it, then removes it. Returns how many.
    static func recoverMarkers<Marker: Decodable>(
        in folder: String, as _: Marker.Type, store: any StateStore, audit: any AuditSink, record: (Marker?) -> AuditRecord
    ) throws -> Int {
        var count = 0
        for name in try store.list(folder) where name.hasSuffix(".json") {
            let key = folder + "/" + name
            guard let data = try store.read(key) else { continue }
            try audit.append(record(try? JSONCoding.decoder.decode(Marker.self, from: data)))
            try? store.remove(key)
            count += 1
        }
        return count
    }
}

/// The change ids whose intent an applier appended, from the threads it applies on.
public final class AppendedIntents: @unchecked Sendable {
    private let lock = NSLock()
    private var written: Set<String> = []

    func insert(_ id: String) { lock.withLock { _ = written.insert(id) } }

    public var ids: Set<String> { lock.withLock { written } }
}
