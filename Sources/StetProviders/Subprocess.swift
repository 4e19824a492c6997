public import Foundation

/// The one way Stet runs a command to its end: git, restic, exec probes and health checks, exec
/// notifiers (docs/architecture.md, principle 8). Each command
/// - runs in a process group of its own under a small reaper (`stet_job_start` in CSys), which is
///   a child subreaper: when the command ends, at its deadline, or when it writes more than it
///   may, its group and every process that left the group (`setsid`, double forks) are killed and
///   reaped, so nothing it started outlives it;
/// - starts with every signal at its default and none blocked (Stet ignores SIGTERM and SIGPIPE,
///   and a child must not inherit that);
/// - reads standard input from /dev/null, a file, or bytes Stet writes as the command takes them,
///   within the same deadline; bytes it never took are counted, never waited for;
/// - has both outputs read as they arrive, so neither pipe fills and blocks it;
/// - gets the environment its caller chooses (nil: Stet's own).
public enum Subprocess {
    /// A command to run.
    public struct Command: Sendable {
        public var executable: String
        public var arguments: [String]
        /// nil: Stet's own environment.
        public var environment: [String: String]?
        public var directory: String?
        public var input: Input
        /// Seconds for the whole run, input and output included (nil: none; clamped to a year).
        public var timeout: Double?
        /// Standard error into standard output's pipe, as `2>&1`.
        public var mergeStandardError: Bool

        public init(
            _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
            input: Input = .none, timeout: Double? = nil, mergeStandardError: Bool = false
        ) {
            self.executable = executable
            self.arguments = arguments
            self.environment = environment
            self.directory = directory
            self.input = input
            self.timeout = timeout
            self.mergeStandardError = mergeStandardError
        }
    }

    /// Standard input: nothing (/dev/null), a file, or bytes written to a pipe.
    public enum Input: Sendable {
        case none
        case file(String)
        case bytes(Data)
    }

    public struct Output: Sendable {
        public let status: Int32
        public let stdout: Data
        public let stderr: String
        /// Bytes of standard input the command never read.
        public let unreadInput: Int
    }

    /// How a command ended.
    public struct Ending: Sendable {
        /// The exit status, or 128 + the signal that ended the command.
        public let status: Int32
        /// The signal that ended the command, if one did.
        public let signal: Int32?
        /// Bytes of `Input.bytes` the command never read: it ended, or stopped reading, first.
        public let unreadInput: Int
    }

    /// The command did not finish: it passed its deadline, or wrote more than it may.
    public struct Stopped: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// It wrote more than it may (not: it passed its deadline).
        public var overflowed = false
    }

    /// The command could not be started (no such program, no descriptors left, an unreadable input file).
    public struct CannotStart: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Of standard error, the first and the last this many bytes are kept (a command's first
    /// complaint and its final one); what lies between is read and dropped.
    static let keptStderr = 32 << 10

    /// Runs `executable` and collects standard output, at most `maximumOutput` bytes (more
    /// kills the command and throws `Stopped`; nil: no bound). `input` is a file read as
    /// standard input (default /dev/null); `timeout` in seconds bounds the whole run (nil: none).
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
        input: String? = nil, timeout: Double? = nil, maximumOutput: Int? = nil
    ) throws -> Output {
        try run(
            Command(executable, arguments, environment: environment, directory: directory, input: input.map { .file($0) } ?? .none,
                    timeout: timeout),
            maximumOutput: maximumOutput)
    }

    /// Runs `command` and collects standard output, at most `maximumOutput` bytes (more kills the
    /// command and throws `Stopped`).
    public static func run(_ command: Command, maximumOutput: Int? = nil) throws -> Output {
        var stdout = Data()
        var stderr = KeptText(limit: keptStderr)
        let ending = try execute(
            command,
            standardOutput: { chunk in
                if let maximumOutput, stdout.count + chunk.count > maximumOutput {
                    throw Stopped(description: "wrote more than \(maximumOutput) bytes; stopped", overflowed: true)
                }
                stdout.append(chunk)
            },
            standardError: { stderr.append($0) })
        return Output(status: ending.status, stdout: stdout, stderr: stderr.text, unreadInput: ending.unreadInput)
    }

    /// Runs `executable`, handing standard output to `consume` as it arrives, and returns the
    /// exit status and standard error. When `consume` throws, or at the deadline, the command
    /// and everything it started are killed and the call throws (`consume`'s error, or `Stopped`).
    public static func stream(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
        input: String? = nil, timeout: Double? = nil, consume: (Data) throws -> Void
    ) throws -> (status: Int32, stderr: String) {
        var stderr = KeptText(limit: keptStderr)
        let ending = try execute(
            Command(executable, arguments, environment: environment, directory: directory, input: input.map { .file($0) } ?? .none,
                    timeout: timeout),
            standardOutput: consume, standardError: { stderr.append($0) })
        return (ending.status, stderr.text)
    }

    /// An environment for commands that should not see Stet's own: only the variables that tell
    /// a program where it is (PATH, HOME, language, time zone, temporary folder), then `extra`.
    /// Never STET_KEY, STET_STATE_DIR or anything else Stet was given.
    public static func plainEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        let kept: Set<String> = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"]
        var environment = ProcessInfo.processInfo.environment.filter { kept.contains($0.key) }
        if environment["PATH"] == nil { environment["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        for (key, value) in extra { environment[key] = value }
        return environment
    }
}

/// A text's first and last `limit` bytes, with a mark where the middle was dropped.
struct KeptText {
    let limit: Int
    private var head = Data()
    private var tail = Data()
    private var dropped = false

    init(limit: Int) { self.limit = limit }

    mutating func append(_ chunk: Data) {
        let room = max(limit - head.count, 0)
        head.append(chunk.prefix(room))
        tail.append(chunk.dropFirst(room))
        if tail.count > limit {
            tail = Data(tail.suffix(limit))
            dropped = true
        }
    }

    var text: String { String(decoding: head, as: UTF8.self) + (dropped ? "\n…\n" : "") + String(decoding: tail, as: UTF8.self) }
}
