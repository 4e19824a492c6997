public import Foundation

/// A command run to its end with both outputs read at once, so neither pipe ever fills and
/// blocks the child, and the child never meets a closed pipe.
public enum Subprocess {
    public struct Output: Sendable {
        public let status: Int32
        public let stdout: Data
        public let stderr: String
    }

    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           directory: String? = nil) throws -> Output
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let collected = Collected()
        let group = DispatchGroup()
        for (index, pipe) in [out, err].enumerated() {
            group.enter()
            DispatchQueue.global().async {
                collected.set(index, pipe.fileHandleForReading.readDataToEndOfFile())
                group.leave()
            }
        }
        group.wait()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: collected.get(0), stderr: String(decoding: collected.get(1), as: UTF8.self))
    }
}

private final class Collected: @unchecked Sendable {
    private var values: [Int: Data] = [:]
    private let lock = NSLock()
    func set(_ index: Int, _ data: Data) { lock.withLock { values[index] = data } }
    func get(_ index: Int) -> Data { lock.withLock { values[index] ?? Data() } }
}
