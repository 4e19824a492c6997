import StetEngine
import StetServer

/// `stet run` under a service manager (systemd's `Type=notify`, `packaging/stet.service`): the
/// loop's life told in sd_notify messages. READY=1 after the first pass, WATCHDOG=1 from the loop's
/// own thread every half of `WatchdogSec`, STOPPING=1 when a signal stops it.
enum ServiceManager {
    /// The notifier `$NOTIFY_SOCKET` names, nil without one; a bad value is an error naming it.
    static func fromEnvironment() throws -> ServiceManagerNotifier? {
        do {
            return try ServiceManagerNotifier.fromEnvironment()
        } catch let failure as ServiceManagerNotifier.Failure {
            throw CommandFailure(status: ExitStatus.error, message: failure.description)
        }
    }

    static func message(_ lifecycle: ReconcileLoop.Lifecycle) -> String {
        switch lifecycle {
        case .ready: "READY=1"
        case .alive: "WATCHDOG=1"
        case .stopping: "STOPPING=1"
        }
    }

    /// Tells `notifier` the loop's life; a message that cannot be sent is logged, never fatal.
    static func attach(_ notifier: ServiceManagerNotifier, to loop: ReconcileLoop) {
        let log = loop.log
        loop.onLifecycle = { lifecycle in
            do {
                try notifier.send(message(lifecycle))
            } catch {
                log("\(error)")
            }
        }
    }
}
