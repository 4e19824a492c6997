public import Foundation

/// The result of a finished process.
public struct ProcessOutput: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    public var combined: String { stdout + stderr }
}

/// Runs a program to completion with `input` as standard input (or none), capturing both
/// outputs. `timeout` bounds the wait: a process still running then is killed and the call fails.
///
/// A plain child, not a job of Stet's runner: what the program starts to outlive it (the
/// replicas of `stet apply`) must survive it, as it does for an operator.
public func run(
    _ executable: String, _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:],
    input: Data? = nil, timeout: TimeInterval = 120
) throws -> ProcessOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : try which(executable))
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.environment = testEnvironment(environment)
    let out = Pipe(), err = Pipe(), inPipe = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inPipe
    try process.run()
    if let input { inPipe.fileHandleForWriting.write(input) }
    try? inPipe.fileHandleForWriting.close()
    // Read both pipes while the process runs, so a large output never blocks it.
    let collected = Collected()
    let group = DispatchGroup()
    for (index, pipe) in [out, err].enumerated() {
        group.enter()
        DispatchQueue.global().async {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            collected.set(index, data)
            group.leave()
        }
    }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw TestFailure("\(executable) \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s")
    }
    let status = exitStatus(of: process)
    return ProcessOutput(
        status: status, stdout: String(decoding: collected.get(0), as: UTF8.self),
        stderr: String(decoding: collected.get(1), as: UTF8.self))
}

/// This process's environment for a program under test: no colour, no state directory or key
/// from the caller's shell, then `extra`.
func testEnvironment(_ extra: [String: String]) -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    env["NO_COLOR"] = "1"
    env.removeValue(forKey: "STET_STATE_DIR")
    env.removeValue(forKey: "STET_KEY")
    for (key, value) in extra { env[key] = value }
    return env
}

/// The full path of `program` on `PATH`.
public func which(_ program: String) throws -> String {
    for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(folder)/\(program)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    throw TestFailure("\(program) is not installed (run scripts/test, which installs what the tests need)")
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

private final class Collected: @unchecked Sendable {
    private var values: [Int: Data] = [:]
    private let lock = NSLock()
    func set(_ index: Int, _ data: Data) { lock.withLock { values[index] = data } }
    func get(_ index: Int) -> Data { lock.withLock { values[index] ?? Data() } }
}

/// The exit status of `process`, whose output has ended. Foundation's own bookkeeping can miss the
/// exit of a child that left background jobs behind (a shell block ending in `cmd &`), and
/// `waitUntilExit` then waits for ever: after a second of Foundation not noticing an exited
/// child, the child is reaped here.
func exitStatus(of process: Process) -> Int32 {
    let pid = process.processIdentifier
    var exitedSince: Date?
    while process.isRunning {
        var info = siginfo_t()
        // WNOWAIT: look without reaping, so Foundation's reaper still can.
        if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid {
            if let since = exitedSince, Date().timeIntervalSince(since) > 1 {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    let signal = status & 0x7f
                    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
                }
            }
            exitedSince = exitedSince ?? Date()
        }
        usleep(10_000)
    }
    return process.terminationStatus
}
