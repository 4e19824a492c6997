public import Foundation

/// restic as a subprocess. The password reaches restic only through `RESTIC_PASSWORD_FILE` in
/// its environment: never on a command line (where `ps` shows it), never in Stet's output.
/// Both outputs are read to their end, so restic never meets a closed pipe (which would leave
/// a stale lock in the repository).
public struct Restic: Sendable {
    public var executable: String

    public init(executable: String = "restic") { self.executable = executable }

    public typealias Output = Subprocess.Output

    /// Why restic failed, told apart by its exit status and standard error (restic 0.14 exits 1
    /// for all three of the first).
    public struct Failure: Error, Sendable, CustomStringConvertible, Equatable {
        public enum Kind: String, Sendable {
            case wrongPassword = "wrong-password"
            case missingRepository = "missing-repository"
            case locked
            case notInstalled = "not-installed"
            case failed
        }

        public let kind: Kind
        public let message: String
        public var description: String { message }
    }

    /// Runs `restic -r REPOSITORY ARGUMENTS` with the password file in the environment.
    public func run(_ arguments: [String], repository: String, passwordFile: String) throws -> Subprocess.Output {
        var environment = ProcessInfo.processInfo.environment.filter {
            ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "XDG_CACHE_HOME", "RESTIC_CACHE_DIR"].contains($0.key)
        }
        environment["RESTIC_PASSWORD_FILE"] = passwordFile
        return try Subprocess.run(try Self.locate(executable), ["-r", repository] + arguments, environment: environment)
    }

    /// The failure an output means, or nil when restic succeeded (`allowed` lists other exit
    /// statuses that are not failures, e.g. 3 for a backup with unreadable files).
    public static func failure(_ output: Output, repository: String, allowed: Set<Int32> = []) -> Failure? {
        guard output.status != 0, !allowed.contains(output.status) else { return nil }
        let text = output.stderr
        let last = text.split(separator: "\n").last { $0.hasPrefix("Fatal:") }.map(String.init)
            ?? text.split(separator: "\n").last.map(String.init) ?? "exit \(output.status)"
        if text.contains("wrong password") {
            return Failure(kind: .wrongPassword, message: "restic cannot open \(repository): the password file does not hold its password")
        }
        if text.contains("Is there a repository at the following location?") || text.contains("repository does not exist") {
            return Failure(kind: .missingRepository, message: "there is no restic repository at \(repository)")
        }
        if text.contains("already locked") {
            return Failure(kind: .locked, message: "\(repository) is locked by another restic process: \(last)")
        }
        return Failure(kind: .failed, message: "restic exited \(output.status): \(last)")
    }

    static func locate(_ program: String) throws -> String {
        if program.hasPrefix("/") { return program }
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(folder)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw Failure(kind: .notInstalled, message: "restic is not installed (Debian: apt-get install restic)")
    }

    /// restic's JSON times (RFC 3339 with nanoseconds).
    static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
