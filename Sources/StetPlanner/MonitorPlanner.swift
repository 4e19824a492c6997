import Foundation
import StetCore
import StetCrypto

extension Planner {
    /// Monitors: registered with the loop when new, updated when their spec changed, and
    /// unregistered (with `--prune`) when gone from the release.
    func monitorPlan(_ desired: DesiredState, _ observed: ObservedState, into changes: inout [Change], notices: inout [Notice]) {
        for name in desired.monitors.keys.sorted() {
            let monitor = desired.monitors[name]!
            let resource = ResourceID(.monitor, name)
            let spec = Data(monitor.specText.utf8).sha256Reference
            let registered = observed.monitors[name]
            guard registered?.specHash != spec else { continue }
            changes.append(Change(
                resource: resource,
                action: .monitor(registered == nil ? .registerMonitor : .updateMonitor), cause: .config,
                reason: registered == nil ? Reason("new-monitor", "not yet probed by stet run") : Reason("spec-changed", "the monitor's spec changed"),
                before: registered.map { ["spec": $0.specHash] }, after: ["spec": spec], disruption: .none,
                precondition: Self.precondition(observed, ResourceID(.monitor, name))))
        }
        for name in observed.monitors.keys.sorted() where desired.monitors[name] == nil {
            let resource = ResourceID(.monitor, name)
            guard prune else {
                notices.append(Notice(resource: resource, mode: nil,
                    reason: Reason("not-in-release", "not in the release: still probed (plan with --prune to unregister it)")))
                continue
            }
            changes.append(Change(
                resource: resource, action: .monitor(.unregisterMonitor), cause: .config,
                reason: Reason("removed", "the monitor is no longer in the release"), before: ["spec": observed.monitors[name]!.specHash],
                after: nil, disruption: .none, precondition: Self.precondition(observed, ResourceID(.monitor, name))))
        }
    }
}
