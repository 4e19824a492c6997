public import Foundation
public import StetCore
import StetCrypto

/// An in-memory world for planner and engine tests only: replicas are entries in a table. It
/// records what was performed, how many changes ran at once, and fails the changes it is told to.
/// It keeps the provider contract as the host's providers do (`StetProvidersTests`): starting a
/// replica that runs its spec already, or stopping one that does not run, changes nothing.
public final class MemoryProvider: Provider, @unchecked Sendable {
    private let lock = NSLock()
    private var world: ObservedState
    private var running = 0
    public private(set) var performed: [String] = []
    public private(set) var mostAtOnce = 0
    /// Change ids that fail when performed.
    public var failing: Set<String> = []
    /// How long each change takes.
    public var delay: Double = 0.02

    public init(_ world: ObservedState = ObservedState()) { self.world = world }

    public var state: ObservedState { lock.withLock { world } }

    /// Changes the world as something outside Stet would (a replica that dies).
    public func change(_ body: (inout ObservedState) -> Void) { lock.withLock { body(&world) } }

    public func observe(_ desired: DesiredState, now: Date) async throws -> ObservedState { state }

    public func perform(_ change: Change, desired: DesiredState) async -> ActionOutcome {
        await performing(change, desired: desired).naming(change)
    }

    /// Every change waits for its intent, as a replica start does on the host.
    public func waitsForIntent(of change: Change) -> Bool { true }

    private func performing(_ change: Change, desired: DesiredState) async -> ActionOutcome {
        lock.withLock {
            running += 1
            mostAtOnce = max(mostAtOnce, running)
            performed.append(change.id)
        }
        try? await Task.sleep(nanoseconds: UInt64(delay * 1e9))
        // As a real provider does: nothing changes before the action's intent is durable.
        do {
            try ActionBegun.mayBegin()
        } catch {
            lock.withLock { running -= 1 }
            return .failed("its intent could not be recorded: \(error)")
        }
        return lock.withLock {
            running -= 1
            if failing.contains(change.id) { return .failed("failed as told") }
            let name = change.resource.name
            guard let index = change.resource.replica else { return .failed("no replica") }
            guard case .service(let action) = change.action else { return .failed("unknown action") }
            switch action {
            case .startReplica, .replaceReplica:
                guard let service = desired.services[name] else { return .failed("not in the release") }
                let spec = Data(service.run.specText.utf8).sha256Reference
                var observed = world.services[name] ?? ObservedService(name: name)
                if action == .startReplica, let running = observed.replicas[index],
                    running.status == .running, running.specHash == spec
                {
                    return .done("already running as pid \(running.pid)")
                }
                let restarts = observed.replicas[index].map { $0.restarts + 1 } ?? 0
                observed.replicas[index] = ObservedReplica(
                    index: index, status: .running, pid: Int32(1000 + performed.count), startTime: UInt64(performed.count),
                    specHash: spec, port: service.run.portsStart.map { $0 + index },
                    health: .healthy, restarts: restarts, lastExit: nil, startedAt: Date(timeIntervalSince1970: 0))
                world.services[name] = observed
                return .done("started")
            case .stopReplica:
                guard world.services[name]?.replicas[index] != nil else { return .done("replica \(index) was not running") }
                world.services[name]?.replicas[index] = nil
                if world.services[name]?.replicas.isEmpty == true { world.services[name] = nil }
                return .done("stopped")
            }
        }
    }
}
