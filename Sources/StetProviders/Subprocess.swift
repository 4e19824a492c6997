public import Foundation

/// A command run to its end with both outputs read at once, so neither pipe ever fills and
/// blocks the child, and the child never meets a closed pipe. The child leads its own process
/// group (Foundation's `Process` makes it one); at the deadline the whole group is killed, so a
/// hung remote or a helper it started cannot hold Stet.
public enum Subprocess {
    public struct Output: Sendable {
        public let status: Int32
        public let stdout: Data
        public let stderr: String
    }

    /// The command did not finish: it passed its deadline, or wrote more than it may.
    public struct Stopped: Error, CustomStringConvertible, Sendable {
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
        var stdout = Data()
        let (status, stderr) = try stream(
            executable, arguments, environment: environment, directory: directory, input: input, timeout: timeout
        ) { chunk in
            if let maximumOutput, stdout.count + chunk.count > maximumOutput {
                throw Stopped(description: "wrote more than \(maximumOutput) bytes; stopped")
            }
            stdout.append(chunk)
        }
        return Output(status: status, stdout: stdout, stderr: stderr)
    }

    /// Runs `executable`, handing standard output to `consume` as it arrives, and returns the
    /// exit status and standard error. When `consume` throws, or at the deadline, the process
    /// group is killed and the call throws (`consume`'s error, or `Stopped`).
    public static func stream(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
        input: String? = nil, timeout: Double? = nil, consume: (Data) throws -> Void
    ) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        if let input {
            guard let handle = FileHandle(forReadingAtPath: input) else {
                throw Stopped(description: "cannot open \(input) for reading")
            }
            process.standardInput = handle
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
        let group = Group(process.processIdentifier)
        let deadline = timeout.map { seconds in
            let item = DispatchWorkItem { group.kill(timedOut: true) }
            // Clamped: a deadline past a year is none, and an absurd one must not trap.
            DispatchQueue.global().asyncAfter(deadline: .now() + min(max(seconds, 0), 365 * 86_400), execute: item)
            return item
        }
        let stderr = Collected()
        let reading = DispatchGroup()
        reading.enter()
        DispatchQueue.global().async {
            let handle = err.fileHandleForReading
            while let chunk = try? handle.read(upToCount: 1 << 16), !chunk.isEmpty { stderr.append(chunk) }
            reading.leave()
        }
        var failure: (any Error)?
        let handle = out.fileHandleForReading
        while let chunk = try? handle.read(upToCount: 1 << 16), !chunk.isEmpty {
            guard failure == nil else { continue }  // drain, so the child is never stuck on a full pipe
            do {
                try consume(chunk)
            } catch {
                failure = error
                group.kill(timedOut: false)
            }
        }
        reading.wait()
        process.waitUntilExit()
        group.exited()
        deadline?.cancel()
        if let failure { throw failure }
        if group.timedOut, let timeout {
            throw Stopped(description: "did not finish within \(String(format: "%g", timeout)) s; stopped")
        }
        return (process.terminationStatus, stderr.text)
    }
}

/// A child's process group, killed only until the child has been waited for: while any of its
/// members lives, the group's id names no other group.
private final class Group: @unchecked Sendable {
    private let id: pid_t
    private let lock = NSLock()
    private var running = true
    private var stoppedAtDeadline = false

    init(_ id: pid_t) { self.id = id }

    var timedOut: Bool { lock.withLock { stoppedAtDeadline } }

    func kill(timedOut: Bool) {
        lock.withLock {
            guard running else { return }
            if timedOut { stoppedAtDeadline = true }
            _ = Glibc.kill(-id, SIGKILL)
        }
    }

    func exited() { lock.withLock { running = false } }
}

/// Standard error: its first and last `Subprocess.keptStderr` bytes.
private final class Collected: @unchecked Sendable {
    private var head = Data()
    private var tail = Data()
    private var dropped = false
    private let lock = NSLock()

    func append(_ chunk: Data) {
        lock.withLock {
            let room = Subprocess.keptStderr - head.count
            head.append(chunk.prefix(max(room, 0)))
            tail.append(chunk.dropFirst(max(room, 0)))
            if tail.count > Subprocess.keptStderr {
                tail = Data(tail.suffix(Subprocess.keptStderr))
                dropped = true
            }
        }
    }

    var text: String {
        lock.withLock { String(decoding: head, as: UTF8.self) + (dropped ? "\n…\n" : "") + String(decoding: tail, as: UTF8.self) }
    }
}
