public import Foundation
import StetProviders

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

/// Runs a program to completion through Stet's own runner (its own process group, killed with
/// everything it started at the deadline), with `input` as standard input (or none), capturing
/// both outputs whole. `timeout` bounds the run: a process still running then is killed and the
/// call fails.
public func run(
    _ executable: String, _ arguments: [String], in directory: String? = nil, environment: [String: String] = [:],
    input: Data? = nil, timeout: TimeInterval = 120
) throws -> ProcessOutput {
    let program = executable.hasPrefix("/") ? executable : try which(executable)
    var stdout = Data(), stderr = Data()
    let command = Subprocess.Command(
        program, arguments, environment: testEnvironment(environment), directory: directory, input: input.map { .bytes($0) } ?? .none,
        timeout: timeout)
    let ending: Subprocess.Ending
    do {
        ending = try Subprocess.execute(command, standardOutput: { stdout.append($0) }, standardError: { stderr.append($0) })
    } catch let stopped as Subprocess.Stopped {
        throw TestFailure("\(executable) \(arguments.joined(separator: " ")) \(stopped)")
    }
    return ProcessOutput(
        status: ending.status, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
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
