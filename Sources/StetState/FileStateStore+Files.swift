import Foundation

/// The rules every path in the state directory keeps, checked before a state file is opened:
///
/// - the folders that hold the state directory, from `/` down, are owned by the user Stet runs
///   as (or root) and not writable by group or others unless sticky (as /tmp), since whoever can
///   write to one could rename the state directory away and put another (or a link) in its place;
/// - the state directory and every folder in it are real directories, not links, owned by the
///   user Stet runs as (or root) and not writable by group or others;
/// - every state file is a regular file with the same owner and write rules, opened with
///   `O_NOFOLLOW`: a link in place of a file (dangling or not) is refused, never followed;
/// - Stet creates its folders 0700 and its files 0600.
///
/// Whoever can write to the state directory can change what Stet trusts and cut its audit log,
/// so a folder or file that another user could change is refused, not repaired: the error says
/// which path and the command that fixes it. Once no other user can write to a folder, nobody
/// but Stet's own user can put a link there between a check and an open.
extension FileStateStore {
    /// Bigger files are not Stet's: reading one would only use memory.
    public static let maximumFileSize = 256 << 20

    /// Opens state file `key` with `flags` (`O_NOFOLLOW` and `O_CLOEXEC` are added) after checking
    /// every folder from the state directory down to it. When `create` is true a missing file
    /// is created 0600 (and missing folders 0700); otherwise a missing file, or a missing folder
    /// on the way, returns nil.
    public func open(_ key: String, flags: Int32, create: Bool = false) throws -> Int32? {
        let path = path(try StateKey.check(key))
        guard try checkFolders(to: StateKey.folder(of: key), create: create) else { return nil }
        // O_NONBLOCK only for the open itself: a FIFO in place of a file must not block it.
        let always = O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC
        var created = false
        var fd = Glibc.open(path, flags | always)
        if fd < 0, errno == ENOENT, create {
            fd = Glibc.open(path, flags | always | O_CREAT | O_EXCL, 0o600)
            if fd >= 0 {
                created = true
            } else if errno == EEXIST {
                fd = Glibc.open(path, flags | always)
            }
        }
        guard fd >= 0 else {
            switch errno {
            case ENOENT: return nil
            case ELOOP: throw StateFileRules.link(path, folder: false)
            default: throw StateError.io("open \(path)", errno)
            }
        }
        do {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw StateError.io("inspect \(path)", errno) }
            try StateFileRules.check(path, info, folder: false)
            guard fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0 else { throw StateError.io("set flags of \(path)", errno) }
            if created { try AtomicFile.syncDirectory((path as NSString).deletingLastPathComponent) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// The folder `key` (and the state directory), checked, and created 0700 where missing.
    @discardableResult
    public func makeFolder(_ key: String) throws -> String {
        _ = try checkFolders(to: try StateKey.check(key), create: true)
        return path(key)
    }

    /// Checks that nothing in the way of a new `key` breaks the rules (creating its folders), so
    /// that a write replaces only a regular file of Stet's own.
    func prepareWrite(_ key: String) throws -> String {
        let path = path(key)
        _ = try checkFolders(to: StateKey.folder(of: key), create: true)
        var info = stat()
        if lstat(path, &info) == 0 {
            try StateFileRules.check(path, info, folder: false)
        } else if errno != ENOENT {
            throw StateError.io("inspect \(path)", errno)
        }
        return path
    }

    /// Reads a whole state file through `open`, at most `maximumFileSize` bytes, into a buffer
    /// of the size the file had when opened (most are small, and read on every pass), grown if
    /// it grows meanwhile.
    func readFile(_ key: String) throws -> Data? {
        guard let fd = try open(key, flags: O_RDONLY) else { return nil }
        defer { Glibc.close(fd) }
        var info = stat()
        let size = fstat(fd, &info) == 0 ? Int(clamping: info.st_size) : 0
        var data = Data(count: min(max(size, 0), Self.maximumFileSize) + 1)
        var length = 0
        while true {
            if length == data.count { data.count = min(data.count * 2, Self.maximumFileSize + 1) }
            let n = data.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + length, $0.count - length) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StateError.io("read \(path(key))", errno)
            }
            if n == 0 {
                data.count = length
                return data
            }
            length += n
            guard length <= Self.maximumFileSize else {
                throw StateError.corrupt(path(key), "more than \(Self.maximumFileSize >> 20) MiB, larger than any file Stet writes")
            }
        }
    }

    /// Checks the state directory and every folder below it on the way to `folder` ("" for the
    /// state directory alone); creates missing ones when `create`. False when one is missing.
    func checkFolders(to folder: String, create: Bool) throws -> Bool {
        var path = root.isEmpty ? "." : root
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        try StateFileRules.checkHolders(of: path)
        guard try checkFolder(path, create: create) else { return false }
        for component in folder.split(separator: "/") where component != "." {
            path = path == "/" ? "/" + component : path + "/" + component
            guard try checkFolder(path, create: create) else { return false }
        }
        return true
    }

    private func checkFolder(_ path: String, create: Bool) throws -> Bool {
        var info = stat()
        if lstat(path, &info) != 0 {
            guard errno == ENOENT else { throw StateError.io("inspect \(path)", errno) }
            guard create else { return false }
            try AtomicFile.makeDirectory(path, mode: 0o700)
            guard lstat(path, &info) == 0 else { throw StateError.io("inspect \(path)", errno) }
        }
        try StateFileRules.check(path, info, folder: true)
        return true
    }
}

/// One check for every state file and folder (see `FileStateStore.open`).
enum StateFileRules {
    static func check(_ path: String, _ info: stat, folder: Bool) throws {
        let type = info.st_mode & S_IFMT
        if type == S_IFLNK { throw link(path, folder: folder) }
        guard type == (folder ? S_IFDIR : S_IFREG) else {
            throw StateError.unsafe(
                path, folder ? "it is not a directory" : "it is not a regular file",
                fix: "move it away; Stet keeps only its own folders and files in its state directory")
        }
        let me = geteuid()
        guard info.st_uid == me || info.st_uid == 0 else {
            throw StateError.unsafe(
                path, "it belongs to uid \(info.st_uid), not to uid \(me) that Stet runs as (nor to root), so that user could change it",
                fix: "run `chown \(me) \(path)` if it is Stet's, or use a state directory of Stet's own user")
        }
        guard info.st_mode & 0o022 == 0 else {
            let mode = String(info.st_mode & 0o7777, radix: 8)
            throw StateError.unsafe(
                path,
                "group or others can write to it (mode 0\(mode)), so they could "
                    + (folder ? "replace what Stet trusts or cut its audit log" : "change it behind Stet's back"),
                fix: "run `chmod go-w \(path)`")
        }
    }

    /// Parents of state directories whose folders passed `checkHolders` in this process. A folder
    /// that only Stet's user or root can write stays so unless one of them changes it.
    /// An `NSLock`, not `Synchronization.Mutex`: the mutex waits on futexes ThreadSanitizer does
    /// not see, so every use of it was reported as a race (`scripts/sanitize thread`).
    private static let checkedHolders = CheckedHolders()
    /// State directories, by absolute name, whose holders passed.
    private static let checkedDirectories = CheckedHolders()

    private final class CheckedHolders: @unchecked Sendable {
        private let lock = NSLock()
        private var folders: Set<String> = []
        func contains(_ folder: String) -> Bool { lock.withLock { folders.contains(folder) } }
        func insert(_ folder: String) { lock.withLock { _ = folders.insert(folder) } }
    }

    /// Checks the folders that hold `stateDirectory`: those on its path from `/` and those on
    /// the real path of its parent (where links on the way lead). Each that exists must be owned
    /// by Stet's user or root, and not writable by group or others unless it is sticky, where
    /// nobody renames or removes another's entries. Links on the way are judged by the folder
    /// that holds them. Folders Stet creates itself are 0700.
    static func checkHolders(of stateDirectory: String) throws {
        // An absolute name is the same folder from any working directory: checked once.
        // Only a check that passed is remembered: one that threw is made again, and throws again.
        let absoluteName = stateDirectory.hasPrefix("/")
        if absoluteName, checkedDirectories.contains(stateDirectory) { return }
        let absolute = absoluteName ? stateDirectory : FileManager.default.currentDirectoryPath + "/" + stateDirectory
        let parent = (absolute as NSString).deletingLastPathComponent
        guard !checkedHolders.contains(parent) else {
            if absoluteName { checkedDirectories.insert(stateDirectory) }
            return
        }
        var folders = prefixes(of: parent)
        if let resolved = realpath(parent, nil) {
            folders += prefixes(of: String(cString: resolved))
            free(resolved)
        }
        let me = geteuid()
        for folder in folders {
            var info = stat()
            guard lstat(folder, &info) == 0 else {
                if errno == ENOENT { continue }
                throw StateError.io("inspect \(folder)", errno)
            }
            guard info.st_mode & S_IFMT == S_IFDIR else { continue }
            guard info.st_uid == me || info.st_uid == 0 else {
                throw StateError.unsafe(
                    folder,
                    "it holds the state directory \(stateDirectory) and belongs to uid \(info.st_uid), not to uid \(me) that "
                        + "Stet runs as (nor to root), so that user could put another state directory in its place",
                    fix: "use a state directory in a folder of Stet's own user")
            }
            guard info.st_mode & 0o022 == 0 || info.st_mode & S_ISVTX != 0 else {
                let mode = String(info.st_mode & 0o7777, radix: 8)
                throw StateError.unsafe(
                    folder,
                    "group or others can write to it (mode 0\(mode)) and it holds the state directory \(stateDirectory), so "
                        + "they could rename the state directory away and put another (or a link) in its place",
                    fix: "run `chmod go-w \(folder)`, or use a state directory in a folder of Stet's own user")
            }
        }
        checkedHolders.insert(parent)
        if absoluteName { checkedDirectories.insert(stateDirectory) }
    }

    /// `/`, `/a`, `/a/b` … `path` (absolute), without empty or `.` components.
    private static func prefixes(of path: String) -> [String] {
        var result = ["/"]
        var current = ""
        for component in path.split(separator: "/") where component != "." {
            current += "/" + component
            result.append(current)
        }
        return result
    }

    static func link(_ path: String, folder: Bool) -> StateError {
        StateError.unsafe(
            path, "it is a symbolic link, and Stet follows no link in its state directory (a link can lead anywhere)",
            fix: folder
                ? "put the folder itself there (or pass the folder it leads to as --state-dir)"
                : "put the file itself there, or remove the link")
    }
}
