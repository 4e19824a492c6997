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
/// replicas of `stet apply`) must survive it, as it does for an operator. Started with
/// `posix_spawn` (`ChildProcess`), not Foundation's `Process`, whose start-up reads past a
/// buffer while it walks `/proc/self/fd` and can crash the test process.
public func run(
    _ executable: String, _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:],
    input: Data? = nil, timeout: TimeInterval = 120
) throws -> ProcessOutput {
    let path = executable.hasPrefix("/") ? executable : try which(executable)
    let stdin = try PipePair(), stdout = try PipePair(), stderr = try PipePair()
    let child: ChildProcess
    do {
        child = try ChildProcess(
            path, arguments, in: directory, environment: testEnvironment(environment),
            stdin: stdin.read, stdout: stdout.write, stderr: stderr.write)
    } catch {
        for pair in [stdin, stdout, stderr] { pair.closeBoth() }
        throw error
    }
    stdin.closeRead()
    stdout.closeWrite()
    stderr.closeWrite()
    // Input and both outputs move on their own threads, so a large output never blocks the child
    // and a child that does not read its input never blocks the test.
    let collected = Collected()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        if let input { writeAll(stdin.write, input) }
        stdin.closeWrite()
        group.leave()
    }
    for (index, pipe) in [stdout, stderr].enumerated() {
        group.enter()
        DispatchQueue.global().async {
            collected.set(index, readAll(pipe.read))
            pipe.closeRead()
            group.leave()
        }
    }
    let deadline = Date().addingTimeInterval(timeout)
    let status = child.wait(until: deadline)
    let remaining = max(0, deadline.timeIntervalSinceNow)
    guard let status, group.wait(timeout: .now() + remaining) == .success else {
        child.killGroup()
        _ = child.wait(until: Date().addingTimeInterval(5))
        throw TestFailure("\(executable) \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s")
    }
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
