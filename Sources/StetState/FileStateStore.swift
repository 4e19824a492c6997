public import Foundation

/// The state directory on the local disk (`--state-dir`, `STET_STATE_DIR`, default `./.stet`, or
/// `/var/lib/stet` for a process systemd started). Every path keeps the rules of
/// `FileStateStore+Files.swift`.
public struct FileStateStore: StateStore {
    public let root: String
    /// `root` as paths below it begin (its slashes tidied, as `NSString` does, and one added),
    /// worked out once: `path` is on the way of every read.
    private let base: String

    public init(root: String) {
        self.root = root
        base = String((root as NSString).appendingPathComponent("k").dropLast())
    }

    /// The state directory named by `option`, else `STET_STATE_DIR`, else the default.
    public static func resolve(
        option: String?, environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()
    ) -> FileStateStore {
        FileStateStore(root: option ?? environment["STET_STATE_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultRoot(environment, pid: pid))
    }

    /// The host's state directory, `/var/lib/stet`, for the process systemd itself started (a unit's
    /// `ExecStart=`); `./.stet` for everything else.
    ///
    /// systemd (248 and later) names that process in `SYSTEMD_EXEC_PID`. `INVOCATION_ID` and
    /// `NOTIFY_SOCKET` alone do not count: every process a unit starts inherits them (the jobs of a
    /// CI runner that runs as a service), and those keep working in `./.stet` as anywhere else.
    public static func defaultRoot(_ environment: [String: String], pid: Int32) -> String {
        startedBySystemd(environment, pid: pid) ? systemdRoot : ".stet"
    }

    /// The state directory of the packaged unit (`StateDirectory=stet`).
    public static let systemdRoot = "/var/lib/stet"

    /// Whether systemd started this very process (`SYSTEMD_EXEC_PID` is its pid).
    public static func startedBySystemd(_ environment: [String: String], pid: Int32) -> Bool {
        guard let text = environment["SYSTEMD_EXEC_PID"], text.utf8.count <= 10, let exec = Int32(text) else { return false }
        return exec == pid && pid > 0
    }

    public var location: String { root }

    /// Where `key` is on disk. For names from outside, use `checkedPath`.
    public func path(_ key: String) -> String {
        // A key in the checked form (`StateKey`) joins as it is; anything else is tidied.
        let bytes = key.utf8
        guard let first = bytes.first, first != UInt8(ascii: "/"), bytes.last != UInt8(ascii: "/"),
            !zip(bytes, bytes.dropFirst()).contains(where: { $0 == UInt8(ascii: "/") && $1 == UInt8(ascii: "/") })
        else { return (root as NSString).appendingPathComponent(key) }
        return base + key
    }

    /// Where `key` is on disk, once `StateKey.check` has passed it.
    public func checkedPath(_ key: String) throws -> String { path(try StateKey.check(key)) }

    /// Every read, list and write first checks the key's form (`StateKey`), then the folders on
    /// the way and the file itself (`FileStateStore+Files.swift`): no links, nothing another user
    /// could change.
    public func read(_ key: String) throws -> Data? { try readFile(try StateKey.check(key)) }

    public func list(_ folder: String) throws -> [String] {
        guard try checkFolders(to: try StateKey.check(folder), create: false) else { return [] }
        return try Self.names(in: path(folder)).filter { !$0.hasPrefix(".") && !$0.contains(".tmp.") }.sorted()
    }

    public func write(_ key: String, _ data: Data) throws {
        let path = try prepareWrite(try StateKey.check(key))
        defer { Self.changes.count(path: path, base: base) }
        // Freed whether or not the write succeeds: once exchanged, an old file is worth nothing,
        // and it may hold the space the write needs.
        defer { Self.displaced.free(replacedAt: path) }
        try AtomicFile.write(data, to: path, mode: 0o600)
    }

    public func replace(_ key: String, _ data: Data) throws {
        let path = try prepareWrite(try StateKey.check(key))
        defer { Self.changes.count(path: path, base: base) }
        defer { Self.displaced.free(replacedAt: path) }
        try AtomicFile.write(data, to: path, mode: 0o600, syncDirectory: false)
    }

    /// The file a staged value replaces is moved aside, not freed (`AtomicFile.write(displace:)`):
    /// the next write, sync or removal of the key frees it, after the action `stage` came before.
    public func stage(_ key: String, _ data: Data) throws {
        let path = try prepareWrite(try StateKey.check(key))
        defer { Self.changes.count(path: path, base: base) }
        if let old = try AtomicFile.write(data, to: path, mode: 0o600, syncContent: false, displace: true) {
            Self.displaced.note(old, replacedAt: path)
        }
    }

    /// Counted after each change is made, whether it succeeded or not (a failed write may have
    /// changed the key as well): a reader that takes the count before it reads, and keeps what it
    /// read only while the count is the same, never keeps a value a change had already replaced.
    public func changes(under folder: String) -> UInt64? { Self.changes.count(of: base + folder) }

    /// The changes this process made, by top-level folder of each state directory (`changes`).
    static let changes = ChangeCounts()

    /// The old files `stage` moved aside in this process, by the path they were replaced at. One
    /// left by a process that ended keeps its temporary name, which no listing shows.
    static let displaced = DisplacedFiles()

    public func stamp(_ key: String) -> StateStamp? {
        guard StateKey.problem(key) == nil else { return nil }
        var info = stat()
        guard lstat(path(key), &info) == 0 else { return nil }
        return StateStamp(info)
    }

    public func sync(_ key: String) throws {
        defer { Self.displaced.free(replacedAt: path(key)) }
        guard let fd = try open(key, flags: O_RDONLY) else { return }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw StateError.io("fsync \(path(key))", errno) }
        try AtomicFile.syncDirectory((path(key) as NSString).deletingLastPathComponent)
    }

    /// Written under a temporary name and linked into place (`AtomicFile.create`): a link fails
    /// rather than replace a file another process made meanwhile.
    public func create(_ key: String, _ data: Data) throws -> Bool {
        let path = try prepareWrite(try StateKey.check(key))
        defer { Self.changes.count(path: path, base: base) }
        return try AtomicFile.create(data, at: path, mode: 0o600)
    }

    public func remove(_ key: String) throws {
        let path = try checkedPath(key)
        defer { Self.changes.count(path: path, base: base) }
        Self.displaced.free(replacedAt: path)
        guard unlink(path) == 0 else {
            if errno == ENOENT { return }
            throw StateError.io("remove \(path)", errno)
        }
        try AtomicFile.syncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// Removes the temporary files in `folder` whose writer has ended (`AtomicFile.writer`):
    /// what a kill left between a write's temporary file and its rename, or before a staged
    /// key's old file was freed. A file of this process or of one still running is left alone.
    public func removeLeftovers(in folder: String) throws {
        guard try checkFolders(to: try StateKey.check(folder), create: false) else { return }
        let path = path(folder)
        let me = getpid()
        for name in try Self.names(in: path) {
            guard let writer = AtomicFile.writer(ofTemporary: name), writer != me, kill(writer, 0) != 0, errno == ESRCH else { continue }
            unlink(path + "/" + name)
        }
    }

    /// A `flock` on the file `name` in the state directory (`StateLock`).
    public func lock(_ name: String) -> any Lock { StateLock(store: self, name: name) }

    public func localPath(_ key: String) throws -> String {
        _ = try checkFolders(to: (try StateKey.check(key) as NSString).deletingLastPathComponent, create: true)
        let path = path(key)
        return path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
    }
}

/// How many changes this process made under each top-level folder of a state directory
/// (`FileStateStore.changes(under:)`), by the folder's path. A folder's count goes up by one
/// with each change under it, and never comes back to a number it had: a reader whose count is
/// still the folder's knows that no change came after.
final class ChangeCounts: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: UInt64] = [:]
    /// The highest count given out, and the count of every folder not in `counts`: the highest
    /// when `counts` was last emptied.
    private var highest: UInt64 = 0
    private var forgotten: UInt64 = 0

    /// One more change at `path`, a key below `base` (the state directory's path with its slash).
    func count(path: String, base: String) {
        guard path.hasPrefix(base) else { return }
        let key = path.dropFirst(base.count)
        let folder = base + (key.firstIndex(of: "/").map { key[..<$0] } ?? key)
        lock.withLock {
            // Bounded (a state directory has a dozen top-level folders; a test process makes
            // hundreds of directories): a folder forgotten counts on from above every count given.
            if counts.count >= 1 << 16, counts[folder] == nil {
                forgotten = highest
                counts = [:]
            }
            let next = (counts[folder] ?? forgotten) &+ 1
            counts[folder] = next
            highest = max(highest, next)
        }
    }

    func count(of folder: String) -> UInt64 { lock.withLock { counts[folder] ?? forgotten } }
}

/// Old files moved aside by `FileStateStore.stage`, freed later (`free`), by the path they were
/// replaced at.
final class DisplacedFiles: @unchecked Sendable {
    private let lock = NSLock()
    private var byPath: [String: [String]] = [:]

    func note(_ old: String, replacedAt path: String) { lock.withLock { byPath[path, default: []].append(old) } }

    /// Removes the old files moved aside from `path`.
    func free(replacedAt path: String) {
        let old = lock.withLock { byPath.removeValue(forKey: path) ?? [] }
        for file in old { unlink(file) }
    }
}
