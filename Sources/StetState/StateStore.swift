public import Foundation

/// Where Stet keeps what it has decided: the accepted release, the pinned trust policy, and the
/// records of each resource (replicas, backup policies, monitors, last actions). Small on
/// purpose (docs/architecture.md, "A fleet on etcd"): the state directory implements it (`FileStateStore`), an
/// in-memory store serves engine tests (`MemoryStateStore`), and a cluster store can implement
/// the same.
///
/// Contract, for every implementation:
/// - Keys are `/`-separated relative paths (`release.json`, `trust/policy.json`), refused with a
///   `StateError` unless `StateKey.check` passes them, before anything is read or written.
/// - `write` is atomic: a reader sees the old value or the new one, and the new one survives a
///   crash once `write` returns. `create` writes only a key that does not exist yet: of two
///   creators at once, exactly one writes.
/// - `list` names what is directly inside a folder, keys and folders alike, sorted.
/// - `lock(_:)` gives the store's lock of that name: the one that serialises the writers of this
///   store (`lock`), or that marks the one `stet run` of it (`run.lock`).
public protocol StateStore: Sendable {
    func read(_ key: String) throws -> Data?
    func write(_ key: String, _ data: Data) throws
    /// Writes `key` as `write` does, atomically and with its content durable, but without
    /// waiting for the folder: after a crash the key holds the new value or the old one, until
    /// the next `write` in its folder, which makes both last. For values whose loss a crash may
    /// cost (a replica's exit, found again when the record is read), on a path that must be fast.
    func replace(_ key: String, _ data: Data) throws
    /// Writes `key` atomically without waiting for the disk at all: once `stage` returns, a
    /// reader (a Stet started after this one was killed) sees the new value, but a power loss
    /// may leave the old one, or an empty file, until `sync(key)` returns. For what must be in
    /// place before an action and only has to outlast a crash of Stet, on the path from a
    /// replica's exit to its replacement.
    func stage(_ key: String, _ data: Data) throws
    /// Makes a staged `key` last, as `write` would have.
    func sync(_ key: String) throws
    /// What tells `key`'s present file apart from any other (its inode, size, and times of
    /// change), or nil when there is none or the store cannot say. An unchanged stamp means the
    /// key was not replaced, written, or changed in owner or mode since; for a folder, that no
    /// entry was added, removed or renamed in it.
    func stamp(_ key: String) -> StateStamp?
    /// How many times this process has changed a key under the top-level `folder` (written,
    /// replaced, staged, created or removed it) through any store of this location, counted once
    /// each change is made; nil when the store cannot say. What a reader of this process cached
    /// while the count stayed the same, no writer of this process has changed since. Whole
    /// folders written or removed at once (`FileStateStore+Folders.swift`, used for releases)
    /// and leftovers under temporary names, which no listing shows, are not counted.
    func changes(under folder: String) -> UInt64?
    /// Writes `key` only when it does not exist yet. True when this call wrote it; false when
    /// it existed (its value untouched).
    func create(_ key: String, _ data: Data) throws -> Bool
    /// The names directly inside `folder`, sorted; empty when it does not exist.
    func list(_ folder: String) throws -> [String]
    /// Removes `key`; nothing when it does not exist.
    func remove(_ key: String) throws
    /// Removes what writers that have ended left in `folder` under temporary names (a kill in
    /// the middle of a write); nothing in a store that leaves none. Call under the state lock.
    func removeLeftovers(in folder: String) throws
    /// The lock `name` of this store (not taken). Its name is checked as a key when it is taken.
    func lock(_ name: String) -> any Lock
    /// Where `key` is on this host's disk, absolute, for what another process opens by path: a
    /// replica writes its log there, restic restores a test into one. The folders on the way are
    /// checked by the store's rules and made (0700) when missing; `key` itself is neither made
    /// nor opened. A store that keeps nothing on this host's disk throws.
    func localPath(_ key: String) throws -> String
    /// Where the store is, as messages name it (the state directory's path).
    var location: String { get }
}

extension StateStore {
    public func replace(_ key: String, _ data: Data) throws { try write(key, data) }
    public func stage(_ key: String, _ data: Data) throws { try write(key, data) }
    public func sync(_ key: String) throws {}
    public func removeLeftovers(in folder: String) throws {}
    public func stamp(_ key: String) -> StateStamp? { nil }
    public func changes(under folder: String) -> UInt64? { nil }
}

/// A file's identity and last change, as `StateStore.stamp` gives it.
public struct StateStamp: Hashable, Sendable {
    public let device: UInt64
    public let inode: UInt64
    public let size: Int64
    public let modified: timespec
    public let changed: timespec

    public init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = info.st_mtim
        changed = info.st_ctim
    }

    public static func == (a: StateStamp, b: StateStamp) -> Bool {
        a.device == b.device && a.inode == b.inode && a.size == b.size && a.modified.tv_sec == b.modified.tv_sec
            && a.modified.tv_nsec == b.modified.tv_nsec && a.changed.tv_sec == b.changed.tv_sec && a.changed.tv_nsec == b.changed.tv_nsec
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(inode)
        hasher.combine(modified.tv_nsec)
    }
}
