public import Foundation
import StetCrypto

/// restic as a subprocess. The password reaches restic only through `RESTIC_PASSWORD_FILE` in
/// its environment: never on a command line (where `ps` shows it), never in Stet's output.
/// Both outputs are read to their end, so restic never meets a closed pipe (which would leave
/// a stale lock in the repository).
///
/// Every run has a deadline (docs/architecture.md, principle 8): a repository that accepts connections and
/// never answers would otherwise hold Stet for good. At the deadline restic's whole process group
/// is killed (`Subprocess`), and the run fails as `notAnswering`.
public struct Restic: Sendable {
    public var executable: String
    public var deadlines = Deadlines()
    /// How long a restic that finds the repository locked by another restic is started again,
    /// once a second (restic 0.14 has no `--retry-lock`), after `restic unlock` has removed the
    /// locks restic calls stale (of a process gone on this host, or older than 30 minutes): a
    /// restic killed with a Stet that was killed leaves its lock behind, which restic 0.14 does
    /// not pass over, and one still running holds it until it ends. The next apply must fail on
    /// neither. `STET_RESTIC_LOCK_WAIT` (seconds, 0 to 3600) sets it; 120 by default.
    public var lockWait: Double = Restic.lockWaitSetting(ProcessInfo.processInfo.environment)

    static func lockWaitSetting(_ environment: [String: String]) -> Double {
        guard let text = environment["STET_RESTIC_LOCK_WAIT"], text.utf8.count <= 8, let seconds = Double(text), seconds.isFinite
        else { return 120 }
        return min(max(seconds, 0), 3600)
    }

    public init(executable: String = "restic") { self.executable = executable }

    public typealias Output = Subprocess.Output

    /// How long each kind of restic command may run, in seconds.
    public struct Deadlines: Sendable {
        /// Reading the snapshot list or the config, and `init`: a repository that needs longer
        /// for these is not answering. `status` and `plan` wait at most this long per repository.
        public var look: Double = 30
        /// `check` of one data subset and `forget --prune`.
        public var verify: Double = 6 * 3600
        /// `backup` and `restore` (and the restore test): bounded, but long enough for a first
        /// backup of a large tree.
        public var transfer: Double = 24 * 3600

        public init() {}
    }

    /// Why restic failed, told apart by its exit status and standard error (restic 0.14 exits 1
    /// for all three of the first).
    public struct Failure: Error, Sendable, CustomStringConvertible, Equatable {
        public enum Kind: String, Sendable {
            case wrongPassword = "wrong-password"
            case missingRepository = "missing-repository"
            case locked
            case notInstalled = "not-installed"
            /// The command passed its deadline and was stopped.
            case notAnswering = "not-answering"
            /// The password file is not one Stet hands to restic (not a regular file, or open to
            /// group or others).
            case passwordFile = "password-file"
            /// Stet is stopping and stopped restic.
            case stopped
            case failed
        }

        public let kind: Kind
        public let message: String
        public var description: String { message }
    }

    /// Runs `restic -r REPOSITORY ARGUMENTS` with the password file in the environment, for at
    /// most `timeout` seconds, reading at most `maximumOutput` bytes of its standard output (nil:
    /// no bound). Throws `Failure` (`notAnswering`, `stopped`, `passwordFile`, `failed` for output
    /// over the bound) when restic could not run to its end; a restic that ended is returned as
    /// it ended.
    public func run(
        _ arguments: [String], repository: String, passwordFile: String, timeout: Double, maximumOutput: Int? = nil
    ) throws -> Subprocess.Output {
        var stdout = Data()
        let output = try run(arguments, repository: repository, passwordFile: passwordFile, timeout: timeout) { chunk in
            if let maximumOutput, stdout.count + chunk.count > maximumOutput {
                throw Subprocess.Stopped(description: "wrote more than \(maximumOutput) bytes; stopped", overflowed: true)
            }
            stdout.append(chunk)
        }
        return Subprocess.Output(status: output.status, stdout: stdout, stderr: output.stderr, unreadInput: output.unreadInput)
    }

    /// As `run`, handing standard output to `consume` as it arrives instead of keeping it (the
    /// returned output's `stdout` is empty): for `backup --json`, whose status lines are read as
    /// they stream and dropped.
    public func run(
        _ arguments: [String], repository: String, passwordFile: String, timeout: Double, consume: (Data) throws -> Void
    ) throws -> Subprocess.Output {
        let started = DispatchTime.now().uptimeNanoseconds
        var tries = 0
        while true {
            let output = try runOnce(arguments, repository: repository, passwordFile: passwordFile, timeout: timeout, consume: consume)
            let waited = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            guard arguments.first != "unlock", Self.failure(output, repository: repository)?.kind == .locked,
                waited + 1 < min(lockWait, timeout), !Running.isStopping
            else { return output }
            // restic's lock is taken before anything is read or written: nothing of this run
            // counted. Stale locks are removed at once, and again every 10 tries.
            if tries % 10 == 0 {
                _ = try? runOnce(["unlock"], repository: repository, passwordFile: passwordFile, timeout: min(timeout, 60)) { _ in }
            } else {
                usleep(1_000_000)
            }
            tries += 1
        }
    }

    private func runOnce(
        _ arguments: [String], repository: String, passwordFile: String, timeout: Double, consume: (Data) throws -> Void
    ) throws -> Subprocess.Output {
        _ = try Self.password(passwordFile)
        var environment = ProcessInfo.processInfo.environment.filter {
            ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "XDG_CACHE_HOME", "RESTIC_CACHE_DIR"].contains($0.key)
        }
        environment["RESTIC_PASSWORD_FILE"] = passwordFile
        // Marks this process's restic runs, so that stopping Stet can stop them too.
        environment[Running.variable] = Running.token
        // `backup --json` reports progress 60 times a second by default: once a second is what
        // a person watching needs (the lines are read as they come and not kept).
        if arguments.first == "backup" { environment["RESTIC_PROGRESS_FPS"] = "1" }
        let executable = try Self.locate(executable)
        guard !Running.isStopping else { throw Failure(kind: .stopped, message: "not started: Stet is stopping") }
        let output: Subprocess.Output
        do {
            let (status, stderr) = try Subprocess.stream(
                executable, ["-r", repository] + arguments, environment: environment, timeout: timeout, consume: consume)
            output = Subprocess.Output(status: status, stdout: Data(), stderr: stderr, unreadInput: 0)
        } catch let stopped as Subprocess.Stopped {
            if stopped.overflowed {
                throw Failure(kind: .failed, message: "restic \(arguments.first ?? "") on \(repository) \(stopped.description)")
            }
            throw Failure(
                kind: .notAnswering,
                message: "repository not answering: restic \(arguments.first ?? "") on \(repository) \(stopped.description)")
        }
        if Running.isStopping, output.status != 0 {
            throw Failure(kind: .stopped, message: "restic \(arguments.first ?? "") on \(repository) was stopped: Stet is stopping")
        }
        return output
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

    /// The largest password file Stet hands to restic.
    static let passwordLimit = 64 << 10

    /// The password file's bytes, after the checks a key file gets: a regular file (a FIFO would
    /// hold restic, and Stet with it, until someone writes to it), of at most `passwordLimit`
    /// bytes, readable by its owner only.
    public static func password(_ path: String) throws(Failure) -> Data {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw Failure(kind: .passwordFile, message: "cannot read the password file \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw Failure(kind: .passwordFile, message: "the password file \(path) is not a regular file")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw Failure(
                kind: .passwordFile,
                message: "the password file \(path) is open to group or others (mode \(String(mode, radix: 8))); run `chmod 600 \(path)`")
        }
        let data: Data?
        do {
            data = try InputFile.read(path, limit: passwordLimit)
        } catch {
            throw Failure(kind: .passwordFile, message: "the password file \(error.description)")
        }
        guard let data else { throw Failure(kind: .passwordFile, message: "the password file \(path) does not exist") }
        return data
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
    package static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    // MARK: - Stopping

    /// Stops every restic this process started and refuses to start more: for a daemon that is
    /// shutting down with a backup still running. Each is asked to end (restic then removes its
    /// lock from the repository), and killed with its process group after `grace` seconds.
    public static func stopAll(grace: Double = 2) {
        Running.stop()
        let deadline = Date().addingTimeInterval(grace)
        var signal = SIGTERM
        while true {
            let running = Running.processes()
            if running.isEmpty { return }
            for pid in running {
                _ = kill(-pid, signal)
                _ = kill(pid, signal)
            }
            if signal == SIGKILL { return }
            if Date() >= deadline { signal = SIGKILL } else { usleep(50_000) }
        }
    }
}

/// The restic runs of this process, found by a variable in their environment (restic's helpers,
/// such as ssh for an sftp repository, inherit it).
enum Running {
    static let variable = "STET_RESTIC_RUN"
    static let token = "\(getpid())-\(UUID().uuidString)"
    private static let state = StopFlag()

    static var isStopping: Bool { state.value }
    static func stop() { state.set() }

    /// Live processes carrying this process's token.
    static func processes() -> [pid_t] {
        let marker = Array("\(variable)=\(token)".utf8)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var found: [pid_t] = []
        for name in names {
            guard let pid = Int32(name), pid > 0, let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            if environ.split(separator: 0).contains(where: { $0.elementsEqual(marker) }),
                let entry = ProcessTable.entry(pid), entry.state != "Z", entry.state != "X"
            {
                found.append(pid)
            }
        }
        return found
    }
}

private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopping = false
    var value: Bool { lock.withLock { stopping } }
    func set() { lock.withLock { stopping = true } }
}
