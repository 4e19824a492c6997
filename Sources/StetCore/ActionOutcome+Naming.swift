extension Change {
    /// What the change is about, as a message names it: `Service/web replica 0`,
    /// `BackupPolicy/files`.
    public var subject: String { "\(resource.whole)" + (resource.replica.map { " replica \($0)" } ?? "") }
}

extension ActionOutcome {
    /// The outcome as a provider reports it for `change`: a failure's error leads with what
    /// failed (`Service/web replica 0: cannot start …`), so the error read alone (in the audit
    /// log, `status`, an alert) says what failed and why. A success is left as it is.
    public func naming(_ change: Change) -> ActionOutcome {
        guard !ok else { return self }
        return .failed("\(change.subject): \(error ?? "failed")")
    }
}
