import Foundation

/// What an action says about itself while it runs: a backup's percent, files and bytes, a
/// replica's last health check while Stet waits for it. Whoever runs the action (`Applier.run`)
/// sets `reporter` for the action's task; a provider calls `report` and never learns who
/// listens, so the `Provider` protocol stays as it is and a provider run outside an action (a
/// test, `status`) reports to no one.
///
/// A report is a short line for a person, never used to decide anything. It is read where it
/// is made: a provider that hands work to another thread takes `reporter` with it.
///
/// The task-local value is a class, not the closure itself: Swift 6.3 optimized code crashes in
/// `swift_task_localValuePush` binding a task-local of optional function type (a release
/// `stet apply` died on its first action); `scripts/check-package` applies a release with the packaged (optimized) binary to keep it so.
public enum ActionProgress {
    /// Who listens to an action's reports.
    public final class Listener: Sendable {
        let hear: @Sendable (String) -> Void
        public init(_ hear: @escaping @Sendable (String) -> Void) { self.hear = hear }
    }

    @TaskLocal public static var reporter: Listener?

    /// The longest report passed on, in characters: text from outside (file names restic is
    /// reading) cannot make a line of a megabyte.
    public static let maximumLength = 200

    /// Passes `text` (cut to `maximumLength`) to the action's listener, if any.
    public static func report(_ text: String) {
        guard let reporter else { return }
        reporter.hear(text.count > maximumLength ? String(text.prefix(maximumLength - 1)) + "…" : text)
    }
}

/// Asked by a provider just before its action changes the world (`mayBegin`: the action's
/// intent must be durable first), and told the moment it has (`now`: a replica's process was
/// spawned), so that whoever runs the action makes what it keeps for a crash last then: not
/// before the action, on the way from a replica's exit to its replacement, and not only once it
/// ends. Set for the action's task like `ActionProgress.reporter`; the provider never learns who
/// listens. The first `now` counts; later ones do nothing.
public enum ActionBegun {
    public final class Listener: @unchecked Sendable {
        private let permit: @Sendable () throws -> Void
        private let hear: @Sendable () -> Void
        private let lock = NSLock()
        private var heard = false

        /// `permit` returns once the action may begin, or throws why it may not; it may be called
        /// more than once, and gives the same answer each time.
        public init(permit: @escaping @Sendable () throws -> Void = {}, _ hear: @escaping @Sendable () -> Void) {
            self.permit = permit
            self.hear = hear
        }

        /// Waits until the action may begin; throws when it may not.
        public func mayBegin() throws { try permit() }

        /// Calls the listener the first time only.
        public func tell() {
            guard lock.withLock({ () -> Bool in
                defer { heard = true }
                return !heard
            }) else { return }
            hear()
        }
    }

    @TaskLocal public static var listener: Listener?

    /// Waits until the action may change the world: its intent is durable. Throws when it cannot
    /// be; the provider then changes nothing. Outside an action it returns at once.
    public static func mayBegin() throws { try listener?.mayBegin() }

    /// The action has begun.
    public static func now() { listener?.tell() }
}
