/// What an action says about itself while it runs: a backup's percent, files and bytes, a
/// replica's last health check while Stet waits for it. Whoever runs the action (`Applier.run`)
/// sets `reporter` for the action's task; a provider calls `report` and never learns who
/// listens, so the `Provider` protocol stays as it is and a provider run outside an action (a
/// test, `status`) reports to no one.
///
/// A report is a short line for a person, never used to decide anything. It is read where it
/// is made: a provider that hands work to another thread takes `reporter` with it.
public enum ActionProgress {
    @TaskLocal public static var reporter: (@Sendable (String) -> Void)?

    /// The longest report passed on, in characters: text from outside (file names restic is
    /// reading) cannot make a line of a megabyte.
    public static let maximumLength = 200

    /// Passes `text` (cut to `maximumLength`) to the action's listener, if any.
    public static func report(_ text: String) {
        guard let reporter else { return }
        reporter(text.count > maximumLength ? String(text.prefix(maximumLength - 1)) + "…" : text)
    }
}
