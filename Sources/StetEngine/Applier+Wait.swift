import Foundation
public import StetCore

extension Applier {
    /// The actions that start a process: after them, `stet apply` waits for readiness.
    static let awaited: Set<ChangeAction> = [.service(.startReplica), .service(.replaceReplica)]

    /// The wait step after a plan was applied (`stet apply`, unless `--no-wait`): for every
    /// change of `report` that started or replaced a replica and succeeded, waits until the
    /// provider finds it ready (`Provider.awaitReady`: healthy as `ReplicaHealth` means it),
    /// at most `timeout` seconds each (nil: the provider's bound from the service's health
    /// settings). All wait at once. Each wait is an action of its own (`wait-healthy`, id
    /// `Service/web#0:wait-healthy`), audited as every action is (`run`): an intent, then a
    /// result whose outcome is failed when the replica is not ready in time. Returns the
    /// waits' results, each naming the change it waited for, in the order of the changes.
    public func awaitReady(after report: Report, plan: Plan, desired: DesiredState, timeout: Double?) async throws -> [Result] {
        let changes = report.results.filter { $0.outcome.ok && Self.awaited.contains($0.change.action) }.map(\.change)
        let results = try await withThrowingTaskGroup(of: Result.self) { group in
            for change in changes {
                group.addTask {
                    let action = Action(
                        id: "\(change.resource):\(Self.waitAction)", plan: plan.id, resource: change.resource.whole,
                        action: Self.waitAction, cause: change.cause.rawValue,
                        reason: "wait until \(change.subject) is healthy after \(change.action)")
                    let (outcome, seconds) = try await run(action) {
                        await provider.awaitReady(change, desired: desired, timeout: timeout) ?? .done("nothing to wait for")
                    }
                    return Result(change: change, outcome: outcome, seconds: seconds)
                }
            }
            var results: [Result] = []
            while let result = try await group.next() { results.append(result) }
            return results
        }
        return changes.compactMap { change in results.first { $0.change == change } }
    }

    /// The action name of a wait for readiness in the audit log.
    public static let waitAction = "wait-healthy"
}
