public import Foundation

/// A fresh directory under the system's temporary folder, removed with everything in it when
/// the value goes away.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ prefix: String = "stet-test") {
        var template = Array((NSTemporaryDirectory() + "/\(prefix).XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: \(String(cString: strerror(errno)))")
        path = String(cString: made!)
        // Readable and enterable by others (not writable): when the tests run as root, replicas
        // run as the unprivileged `stet-replica` and must enter their working directory here.
        // The state directory inside stays 0700.
        chmod(path, 0o755)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// `path/relative`.
    public func file(_ relative: String) -> String { path + "/" + relative }

    /// Writes `text` to `relative`, creating folders on the way.
    @discardableResult
    public func write(_ relative: String, _ text: String, mode: Int = 0o644) throws -> String {
        try write(relative, Data(text.utf8), mode: mode)
    }

    @discardableResult
    public func write(_ relative: String, _ data: Data, mode: Int = 0o644) throws -> String {
        let full = file(relative)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: full))
        chmod(full, mode_t(mode))
        return full
    }

    public func read(_ relative: String) -> Data? { FileManager.default.contents(atPath: file(relative)) }

    /// Every file below `relative` with its bytes, to compare a folder before and after. A state
    /// directory's lock files (`lock`, `run.lock`) count as present or not: each holder writes its
    /// own token into them (`StateLock`), which is no state, and a refusal may hold the lock.
    public func snapshot(_ relative: String) -> [String: Data] {
        let root = file(relative)
        var result: [String: Data] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return result }
        for case let name as String in walker {
            guard let data = FileManager.default.contents(atPath: root + "/" + name) else { continue }
            result[name] = name == "lock" || name == "run.lock" ? Data("(a lock's token)".utf8) : data
        }
        return result
    }
}
