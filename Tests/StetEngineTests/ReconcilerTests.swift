import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetProviders
import StetState
import StetTesting
import Testing

/// Real passes of the reconcile loop (observe, plan, admit, apply) on the in-memory provider,
/// with a real audit log and state directory, on a clock the test sets: no processes, no sleeps.
@Suite struct ReconcilerTests {
    static let web = ResourceID(.service, "web")

    let state = TemporaryDirectory("stet-reconciler")
    let key: PrivateKey
    let trust: AuditTrust
    let log: AuditLog
    let alerts = Alerts()
    /// Every raise and clear of a self alert, in order: "raise NAME RESOURCE", "clear NAME RESOURCE".
    let events = Alerts()

    static let t0 = Date(timeIntervalSince1970: 1_790_000_000)
    static let release = ReleaseRef(version: 1, digest: "sha256:1")

    /// The self alerts a pass raised, by name.
    final class Alerts: @unchecked Sendable {
        private let lock = NSLock()
        private var names: [String] = []
        func add(_ name: String) { lock.withLock { names.append(name) } }
        var all: [String] { lock.withLock { names } }
    }

    init() throws {
        key = try PrivateKey.generate()
        trust = AuditTrust([(name: "ci", publicKey: key.publicKey)])
        log = try AuditLog(stateDirectory: state.path, trust: trust, key: key, host: "h", via: "daemon", release: Self.release)
    }

    var store: FileStateStore { FileStateStore(root: state.path) }

    func reconciler(budget: Int = 10) -> Reconciler {
        var hooks = Reconciler.Hooks()
        let alerts = self.alerts
        let events = self.events
        hooks.selfAlert = { alert, _, _ in
            alerts.add(alert.name.rawValue)
            events.add("raise \(alert.name.rawValue) \(alert.resource?.description ?? "")")
        }
        hooks.selfAlertCleared = { alert, _ in events.add("clear \(alert.name.rawValue) \(alert.resource?.description ?? "")") }
        return Reconciler(audit: log, store: store, budget: budget, prune: false, hooks: hooks)
    }

    static func desired(backoff: (initial: Double, max: Double) = (1, 4)) -> DesiredState {
        var desired = DesiredState()
        desired.services["web"] = Service(
            metadata: Metadata(name: "web"), replicas: 1, run: Service.Run(command: ["serve"]),
            backoffInitial: StetDuration(seconds: backoff.initial), backoffMax: StetDuration(seconds: backoff.max))
        return desired
    }

    /// One pass over `web` at t0 + `at`.
    func pass(_ reconciler: Reconciler, _ provider: MemoryProvider, at: Double, desired: DesiredState = desired())
        async throws -> Reconciler.Outcome
    {
        try await reconciler.reconcile(
            ["web"], monitors: false, desired: desired, release: Self.release, provider: provider, now: Self.t0.addingTimeInterval(at))
    }

    /// The replica dies, as a killed process would.
    static func kill(_ provider: MemoryProvider) {
        provider.change { world in
            world.services["web"]?.replicas[0]?.status = .exited
            world.services["web"]?.replicas[0]?.lastExit = "killed by signal 9"
        }
    }

    static func running(_ provider: MemoryProvider) -> Bool { provider.state.services["web"]?.replicas[0]?.status == .running }

    func entries() throws -> [AuditEntry] {
        var entries: [AuditEntry] = []
        let fd = open(state.path + "/audit/log.jsonl", O_RDONLY)
        defer { close(fd) }
        let scan = try AuditScanner(trust: trust).scan(fd: fd, from: .start) { entries.append($0.entry); return true }
        #expect(scan.failure == nil)
        return entries
    }

    @Test func aReplicaMarkedExitedIsRestartedByOnePass() async throws {
        let provider = MemoryProvider()
        provider.delay = 0
        let reconciler = reconciler()
        // The release asks for the replica: started, not counted as a correction.
        let first = try await pass(reconciler, provider, at: 0)
        #expect(first.allowed.map(\.id) == ["Service/web#0:start-replica"] && first.allowed[0].cause == .config)
        #expect(Self.running(provider))
        Self.kill(provider)
        let outcome = try await pass(reconciler, provider, at: 10)
        #expect(outcome.allowed.map(\.id) == ["Service/web#0:start-replica"])
        #expect(outcome.allowed.first?.cause == .drift)
        #expect(!outcome.failed && outcome.retry.isEmpty)
        #expect(Self.running(provider))
        #expect(provider.state.services["web"]?.replicas[0]?.restarts == 1)
        // Drift recorded, then the action's intent and result.
        let kinds = try entries().filter { $0.change == "Service/web#0:start-replica" }.map(\.kind)
        #expect(kinds == [.intent, .result, .drift, .intent, .result])
        let status = ResourceStatus.load(Self.web, from: store)
        #expect(status.correctionsLastHour == 1 && status.backoffSeconds == 1 && status.budgetExhausted == false)
        #expect(status.backoffUntil == Self.t0.addingTimeInterval(11))
        // Nothing left to do: the next pass changes nothing.
        #expect(try await pass(reconciler, provider, at: 11).allowed.isEmpty)
    }

    /// A replica that dies after every start: corrections back off (1 s, 2 s, 4 s), then the
    /// budget of 3 stops them with one alert, until the first correction leaves the hour.
    @Test func aCrashLoopHitsTheBackoffThenTheBudget() async throws {
        let provider = MemoryProvider()
        provider.delay = 0
        let reconciler = reconciler(budget: 3)
        _ = try await pass(reconciler, provider, at: 0)
        var corrected: [Double] = []
        var heldUntil: [Double: Double] = [:]
        for at in [1, 1.5, 2, 3, 4, 8, 9, 3600, 3601] as [Double] {
            Self.kill(provider)
            let outcome = try await pass(reconciler, provider, at: at)
            if Self.running(provider) { corrected.append(at) }
            if let until = outcome.retry[Self.web] { heldUntil[at] = until.timeIntervalSince(Self.t0) }
        }
        #expect(corrected == [1, 2, 4, 3601])
        #expect(heldUntil == [1.5: 2, 3: 4])
        #expect(alerts.all == ["StetSelfHealBudgetExhausted"])
        // The correction after the hour clears the budget's alert.
        let raised = try #require(events.all.lastIndex(of: "raise StetSelfHealBudgetExhausted Service/web"))
        #expect(events.all[raised...].contains("clear StetSelfHealBudgetExhausted Service/web"))
        let log = try entries()
        #expect(log.filter { $0.kind == .alert && $0.action == "self-heal-budget" }.count == 1)
        #expect(log.filter { $0.kind == .result && $0.cause == "drift" }.count == 4)
        // Every death was recorded as drift, corrected or not.
        #expect(log.filter { $0.kind == .drift }.count == 9)
        let status = ResourceStatus.load(Self.web, from: store)
        #expect(status.budgetExhausted == false && status.correctionsLastHour == 3)
    }

    /// A start that fails (a command that cannot start) is tried again only after the
    /// service's backoff, whatever its cause; status shows the backoff.
    @Test func aFailedChangeIsRetriedAfterTheBackoff() async throws {
        let provider = MemoryProvider()
        provider.delay = 0
        provider.failing = ["Service/web#0:start-replica"]
        let reconciler = reconciler()
        let first = try await pass(reconciler, provider, at: 0)
        #expect(first.failed)
        #expect(first.retry == [Self.web: Self.t0.addingTimeInterval(1)])
        let status = ResourceStatus.load(Self.web, from: store)
        #expect(status.backoffSeconds == 1 && status.lastOutcome == "failed")
        let second = try await pass(reconciler, provider, at: 1)
        #expect(second.retry == [Self.web: Self.t0.addingTimeInterval(3)])
        _ = try await pass(reconciler, provider, at: 3)
        // The third failure running of the resource is alerted on.
        #expect(alerts.all == ["StetProviderFailing"])
        provider.failing = []
        _ = try await pass(reconciler, provider, at: 7)
        #expect(Self.running(provider))
        // The start that succeeds clears the provider's alert.
        let raised = try #require(events.all.lastIndex(of: "raise StetProviderFailing Service/web"))
        #expect(events.all[raised...].contains("clear StetProviderFailing Service/web"))
    }
}
