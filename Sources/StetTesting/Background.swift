public import Foundation

/// A program running beside a test (`stet run`, a slow `stet apply`), its output going to
/// files. The test stops it, always: `stop()` sends a signal, waits, then kills.
public final class BackgroundProcess: @unchecked Sendable {
    public let child: ChildProcess
    public let outputPath: String

    public init(_ executable: String, _ arguments: [String], in directory: String, environment: [String: String] = [:]) throws {
        outputPath = directory + "/background-\(UInt32.random(in: 0...UInt32.max)).log"
        let output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard output >= 0 else { throw TestFailure("cannot open \(outputPath): \(String(cString: strerror(errno)))") }
        defer { close(output) }
        let input = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw TestFailure("cannot open /dev/null: \(String(cString: strerror(errno)))") }
        defer { close(input) }
        child = try ChildProcess(
            executable, arguments, in: directory, environment: testEnvironment(environment),
            stdin: input, stdout: output, stderr: output)
    }

    public var pid: Int32 { child.pid }
    public var isRunning: Bool { child.isRunning }
    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits up to `timeout` seconds for the exit, then SIGKILL. Returns the
    /// exit status (or the signal's number + 128).
    @discardableResult
    public func stop(_ signal: Int32 = SIGTERM, timeout: Double = 20) -> Int32 {
        if child.isRunning { kill(pid, signal) }
        if let status = child.wait(until: Date().addingTimeInterval(timeout)) { return status }
        kill(pid, SIGKILL)
        return child.wait(until: .distantFuture) ?? 128 + SIGKILL
    }

    deinit { if child.isRunning { stop(SIGKILL, timeout: 5) } }
}

/// Polls `condition` every `interval` until it holds or `timeout` passes; returns whether it held.
public func eventually(timeout: Double = 30, interval: Double = 0.05, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(useconds_t(interval * 1e6))
    }
    return try condition()
}

/// `eventually` for async tests: the pauses are `Task.sleep`, so a long wait does not hold one of
/// the few threads of Swift's cooperative pool, which every other test of the run shares (a pool
/// held by waits starves tests with time limits).
public func pollUntil(timeout: Double = 30, interval: Double = 0.05, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
    }
    return try condition()
}

extension Samples {
    /// A service of real replicas for tests: a small HTTP server per replica on `port + i`
    /// (python3's http.server), with fast health checks. `version` changes the spec.
    public static func liveService(
        name: String, replicas: Int, port: Int, version: Int = 1, maxUnavailable: Int = 1,
        command: String? = nil, backoffInitial: String = "100ms", backoffMax: String = "2s", drift: String = "correct",
        healthEvery: String = "300ms"
    ) -> String {
        """
        apiVersion: stet/v1
        kind: Service
        metadata: {name: \(name)}
        spec:
          replicas: \(replicas)
          run:
            command: \(command ?? #"[sh, -c, 'exec python3 -m http.server --bind 127.0.0.1 "$PORT"']"#)
            env: {VERSION: "\(version)"}
            ports: {start: \(port)}
            stopTimeout: 5s
          health:
            http: {path: /}
            interval: \(healthEvery)
            timeout: \(healthEvery)
            failureThreshold: 3
            startPeriod: 3s
          restart:
            backoff: {initial: \(backoffInitial), max: \(backoffMax)}
          update: {maxUnavailable: \(maxUnavailable)}
          drift: \(drift)

        """
    }
}

extension Samples {
    /// A backup policy for tests, with every field that matters set by the caller.
    public static func backupPolicy(
        name: String, repository: String, passwordFile: String, paths: [String], every: String = "1h", rpo: String = "2h",
        retention: String? = nil, check: String? = nil, restoreTest: String? = nil
    ) -> String {
        var verify: [String] = []
        if let check { verify.append("check: \(check)") }
        if let restoreTest { verify.append("restoreTest: \(restoreTest)") }
        return """
            apiVersion: stet/v1
            kind: BackupPolicy
            metadata: {name: \(name)}
            spec:
              paths: [\(paths.joined(separator: ", "))]
              repository:
                restic: {repo: \(repository), passwordFile: \(passwordFile)}
              every: \(every)
              rpo: \(rpo)
            \(retention.map { "  retention: \($0)\n" } ?? "")\(verify.isEmpty ? "" : "  verify: {\(verify.joined(separator: ", "))}\n")
            """
    }
}
