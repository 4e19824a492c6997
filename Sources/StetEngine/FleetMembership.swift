public import StetCore

/// A fleet node's part in the reconcile loop (docs/architecture.md, "A fleet on etcd"): which share
/// of the release this host runs, and whether it may act at all. `StetFleet`'s `FleetNode` is the
/// one implementation; on one host the loop has none and runs the whole release.
public protocol FleetMembership: AnyObject, Sendable {
    /// This node's share of `desired`: the replicas, backup policies and monitors the leader
    /// assigned to it, and every notifier. Nil until the node has read the assignments once.
    func share(of desired: DesiredState) -> DesiredState?

    /// False while the node cannot prove what it owns (its lease not renewed, or not read the
    /// assignments yet): the loop then starts and stops nothing, and keeps what runs running.
    var mayAct: Bool { get }

    /// The release the loop acts on, and its whole desired state (the leader places from it).
    func releaseTaken(_ release: ReleaseRef, _ desired: DesiredState)

    /// How to wake the loop when the share or `mayAct` changed; called once, before the first pass.
    func attach(wake: @escaping @Sendable () -> Void)

    /// What the other nodes spent of each resource's self-heal budget, and the backoff they keep
    /// (read before each pass).
    func correctionsElsewhere() -> [ResourceID: CorrectionPolicy.Elsewhere]

    /// What this node spent and keeps (after each pass), for the other nodes.
    func shareCorrections(_ mine: [ResourceID: CorrectionPolicy.Elsewhere])

    /// A host drill of `service` (`spec.drill.host`): this node's loss for it, within `bound` seconds.
    func drillHostLoss(service: String, within bound: Double) async -> HostDrillOutcome

    /// Why a host drill of `service` cannot start now (nothing would be done), or nil; `busy`:
    /// another node is drilling its own loss for it (worth trying again soon).
    func hostDrillProblem(service: String) -> (reason: String, busy: Bool)?
}

/// What a host drill came to, or why it did not start (`notStarted`: nothing was done).
public struct HostDrillOutcome: Sendable, Equatable {
    public var ok: Bool
    public var seconds: Double
    public var detail: String
    public var notStarted: String?
    /// Not started because another node was drilling its loss for the service.
    public var busy = false

    public init(ok: Bool, seconds: Double, detail: String) {
        self.ok = ok
        self.seconds = seconds
        self.detail = detail
    }

    public static func notStarted(_ why: String, busy: Bool = false) -> HostDrillOutcome {
        var outcome = HostDrillOutcome(ok: false, seconds: 0, detail: why)
        outcome.notStarted = why
        outcome.busy = busy
        return outcome
    }
}

extension FleetMembership {
    public func correctionsElsewhere() -> [ResourceID: CorrectionPolicy.Elsewhere] { [:] }
    public func shareCorrections(_ mine: [ResourceID: CorrectionPolicy.Elsewhere]) {}
    public func drillHostLoss(service: String, within bound: Double) async -> HostDrillOutcome {
        .notStarted("not a fleet node")
    }
    public func hostDrillProblem(service: String) -> (reason: String, busy: Bool)? { ("not a fleet node", false) }
}
