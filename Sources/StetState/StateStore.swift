public import Foundation

/// Where Stet keeps what it has decided: the accepted release, the pinned trust policy, and
/// (later) per-resource records. Small on purpose: a cluster store can implement the same.
///
/// Keys are `/`-separated relative paths (`release.json`, `trust/policy.json`), refused unless
/// `StateKey.check` passes them. `write` is atomic: a reader sees the old value or the new
/// one, and the new one survives a crash once `write` returns.
public protocol StateStore: Sendable {
    func read(_ key: String) throws -> Data?
    func write(_ key: String, _ data: Data) throws
    /// The names directly inside `folder`, sorted; empty when it does not exist.
    func list(_ folder: String) throws -> [String]
    /// Removes `key`; nothing when it does not exist.
    func remove(_ key: String) throws
}

/// The state directory on the local disk (`--state-dir`, `STET_STATE_DIR`, default `./.stet`).
public struct FileStateStore: StateStore {
    public let root: String

    public init(root: String) { self.root = root }

    /// The state directory named by `option`, else `STET_STATE_DIR`, else `./.stet`.
    public static func resolve(option: String?, environment: [String: String] = ProcessInfo.processInfo.environment)
        -> FileStateStore
    {
        FileStateStore(root: option ?? environment["STET_STATE_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? ".stet")
    }

    /// Where `key` is on disk. For names from outside, use `checkedPath`.
    public func path(_ key: String) -> String { (root as NSString).appendingPathComponent(key) }

    /// Where `key` is on disk, once `StateKey.check` has passed it.
    public func checkedPath(_ key: String) throws -> String { path(try StateKey.check(key)) }

    /// Every read, list and write first checks the key's form (`StateKey`), then the folders on
    /// the way and the file itself (`FileStateStore+Files.swift`): no links, nothing another user
    /// could change.
    public func read(_ key: String) throws -> Data? { try readFile(try StateKey.check(key)) }

    public func list(_ folder: String) throws -> [String] {
        guard try checkFolders(to: try StateKey.check(folder), create: false) else { return [] }
        let path = path(folder)
        return try FileManager.default.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".") && !$0.contains(".tmp.") }.sorted()
    }

    public func write(_ key: String, _ data: Data) throws {
        try AtomicFile.write(data, to: try prepareWrite(try StateKey.check(key)), mode: 0o600)
    }

    public func remove(_ key: String) throws {
        let path = try checkedPath(key)
        guard unlink(path) == 0 else {
            if errno == ENOENT { return }
            throw StateError.io("remove \(path)", errno)
        }
        try AtomicFile.syncDirectory((path as NSString).deletingLastPathComponent)
    }
}

/// An in-memory store for tests of the parts that only decide.
public final class MemoryStateStore: StateStore, @unchecked Sendable {
    private var values: [String: Data] = [:]
    private let lock = NSLock()

    public init() {}

    public func read(_ key: String) throws -> Data? {
        try StateKey.check(key)
        return lock.withLock { values[key] }
    }

    public func write(_ key: String, _ data: Data) throws {
        try StateKey.check(key)
        lock.withLock { values[key] = data }
    }

    public func remove(_ key: String) throws {
        try StateKey.check(key)
        _ = lock.withLock { values.removeValue(forKey: key) }
    }

    public func list(_ folder: String) throws -> [String] {
        try StateKey.check(folder)
        let prefix = folder + "/"
        return lock.withLock {
            values.keys.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
                .map { String($0.dropFirst(prefix.count)) }.sorted()
        }
    }
}
