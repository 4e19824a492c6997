import Foundation
import StetCore
import StetProviders

/// What other threads tell the reconcile loop: signals, and the results of the slow work it
/// handed out (health checks, probes, release checks). Posting appends under a lock and writes a
/// byte to a pipe that the loop's `poll` watches beside the replicas' pidfds, so the loop wakes at
/// once and only its own thread ever changes its state.
final class LoopInbox: @unchecked Sendable {
    enum Event: Sendable {
        /// SIGTERM or SIGINT: finish what is in flight, then stop.
        case stop
        /// SIGHUP: look for a new release now.
        case checkRelease
        /// A fleet node's share or its right to act changed (`FleetMembership`).
        case fleet
        case health(HealthSchedule.Result)
        case probe(name: String, started: Date, result: ProbeRunner.Result)
        case release(ReleaseWatcher.Outcome)
        /// A backup pass's plan (it holds a share of the state lock), or why there is none (it
        /// holds none).
        case backupPlan(Result<Plan, any Error>)
        /// What a backup pass applied.
        case backupsApplied(Result<Applier.Report, any Error>)
        /// A drill's verdict.
        case drill(ResourceID, Drills.Verdict)
        case hostDrill(ResourceID, HostDrillOutcome, started: Date)
    }

    /// The end of the wake pipe that `poll` watches.
    let wakeDescriptor: Int32
    private let wakeWriter: Int32
    private let lock = NSLock()
    private var events: [Event] = []

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            }
        } else {
            // No descriptors left: the loop then looks at the inbox every 100 ms.
            fds = [-1, -1]
        }
        wakeDescriptor = fds[0]
        wakeWriter = fds[1]
    }

    deinit {
        if wakeDescriptor >= 0 { close(wakeDescriptor) }
        if wakeWriter >= 0 { close(wakeWriter) }
    }

    func post(_ event: Event) {
        lock.withLock { events.append(event) }
        // A full pipe already wakes the loop: a failed write loses nothing.
        var byte: UInt8 = 1
        _ = write(wakeWriter, &byte, 1)
    }

    /// Everything posted so far, oldest first. The pipe is emptied before the events are taken,
    /// so an event posted meanwhile leaves its byte behind and wakes the next `poll`.
    func drain() -> [Event] {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(wakeDescriptor, &buffer, buffer.count) > 0 {}
        return lock.withLock {
            defer { events.removeAll(keepingCapacity: true) }
            return events
        }
    }
}
