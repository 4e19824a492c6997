public import Foundation

/// A state store in memory, for tests of the parts that decide (the engine on the in-memory
/// provider). Keys pass the same checks as in the state directory. `localPath` answers only
/// when the store was given a folder on disk for what processes open by path.
public final class MemoryStateStore: StateStore, @unchecked Sendable {
    private var values: [String: Data] = [:]
    private var locks: [String: MemoryLock] = [:]
    private let mutex = NSLock()
    private let localDirectory: String?

    /// `localDirectory`: where `localPath` puts keys (absolute), or nil for a store that keeps
    /// nothing on disk.
    public init(localDirectory: String? = nil) { self.localDirectory = localDirectory }

    public var location: String { "memory" }

    public func read(_ key: String) throws -> Data? {
        try StateKey.check(key)
        return mutex.withLock { values[key] }
    }

    public func write(_ key: String, _ data: Data) throws {
        try StateKey.check(key)
        mutex.withLock { values[key] = data }
    }

    public func create(_ key: String, _ data: Data) throws -> Bool {
        try StateKey.check(key)
        return mutex.withLock {
            guard values[key] == nil else { return false }
            values[key] = data
            return true
        }
    }

    public func remove(_ key: String) throws {
        try StateKey.check(key)
        _ = mutex.withLock { values.removeValue(forKey: key) }
    }

    /// Keys and folders directly inside `folder`, as the state directory lists files and folders.
    public func list(_ folder: String) throws -> [String] {
        try StateKey.check(folder)
        let prefix = folder + "/"
        return mutex.withLock {
            Set(values.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count).prefix { $0 != "/" }) }).sorted()
        }
    }

    /// One `MemoryLock` per name, shared by everyone who asks for it.
    public func lock(_ name: String) -> any Lock {
        mutex.withLock {
            if let lock = locks[name] { return lock }
            let lock = MemoryLock(name: name)
            locks[name] = lock
            return lock
        }
    }

    public func localPath(_ key: String) throws -> String {
        try StateKey.check(key)
        guard let localDirectory else {
            throw StateError.io("place \(key) on disk: this in-memory state store was given no folder on disk", ENOENT)
        }
        let path = (localDirectory as NSString).appendingPathComponent(key)
        try AtomicFile.makeDirectory((path as NSString).deletingLastPathComponent, mode: 0o700)
        return path
    }
}
