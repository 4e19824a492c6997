public import Foundation

/// Folders written whole: the state directory's copy of a release is a folder of files that
/// must appear all at once or not at all. The rules of `FileStateStore+Files.swift` hold inside
/// them too: real folders (0700) and regular files (0600) of Stet's own user, never a link.
extension FileStateStore {
    /// Makes folder `key` hold exactly `files` (relative `/`-separated paths in `StateKey`'s form
    /// below `key`), atomically: they are written into a new hidden folder beside it, each file
    /// and folder fsynced, and the folder is then renamed to `key`. A crash leaves `key` as it
    /// was or complete. A `key` that exists already is replaced (moved aside, then removed).
    /// Writers of one folder take turns under the state lock.
    public func writeFolder(_ key: String, files: [(path: String, data: Data)]) throws {
        try StateKey.check(key)
        for file in files { try StateKey.check(key + "/" + file.path) }
        let parentKey = (key as NSString).deletingLastPathComponent
        _ = try checkFolders(to: parentKey, create: true)
        let parent = path(parentKey)
        let temporary = (parent as NSString).appendingPathComponent(".new-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard mkdir(temporary, 0o700) == 0 else { throw StateError.io("create directory \(temporary)", errno) }
        var renamed = false
        defer { if !renamed { try? Self.removeTree(temporary) } }
        var folders: Set<String> = [""]
        var written: [String] = []
        for file in files {
            var folder = ""
            for component in file.path.split(separator: "/").dropLast() {
                folder += (folder.isEmpty ? "" : "/") + component
                guard folders.insert(folder).inserted else { continue }
                let made = temporary + "/" + folder
                guard mkdir(made, 0o700) == 0 else { throw StateError.io("create directory \(made)", errno) }
            }
            let target = temporary + "/" + file.path
            let fd = Glibc.open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw StateError.io("create \(target)", errno) }
            defer { Glibc.close(fd) }
            try AtomicFile.writeAll(file.data, to: fd, path: target)
            written.append(target)
        }
        try Self.sync(written)
        // Deepest first, so every entry is durable before the folder that names it.
        for folder in folders.sorted(by: { $0.count > $1.count }) {
            try AtomicFile.syncDirectory(folder.isEmpty ? temporary : temporary + "/" + folder)
        }
        let final = path(key)
        var info = stat()
        if lstat(final, &info) == 0 {
            let aside = (parent as NSString).appendingPathComponent(".old-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            guard rename(final, aside) == 0 else { throw StateError.io("move \(final) aside", errno) }
            defer { try? Self.removeTree(aside) }
            guard rename(temporary, final) == 0 else { throw StateError.io("rename \(temporary) to \(final)", errno) }
        } else {
            guard errno == ENOENT else { throw StateError.io("inspect \(final)", errno) }
            guard rename(temporary, final) == 0 else { throw StateError.io("rename \(temporary) to \(final)", errno) }
        }
        renamed = true
        try AtomicFile.syncDirectory(parent)
    }

    /// fsyncs the files at `paths`, eight at a time: each fsync waits for the disk, and the
    /// file system commits those that wait together at once (a copy of 10,000 files is
    /// durable about four times sooner than one by one).
    static func sync(_ paths: [String]) throws {
        final class FirstFailure: @unchecked Sendable {
            private let lock = NSLock()
            private var failure: StateError?
            func record(_ error: StateError) { lock.withLock { if failure == nil { failure = error } } }
            var error: StateError? { lock.withLock { failure } }
        }
        let failure = FirstFailure()
        let width = min(8, paths.count)
        let group = DispatchGroup()
        for first in 0..<width {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                for index in stride(from: first, to: paths.count, by: width) {
                    let fd = Glibc.open(paths[index], O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                    guard fd >= 0 else { return failure.record(StateError.io("open \(paths[index])", errno)) }
                    defer { Glibc.close(fd) }
                    guard fsync(fd) == 0 else { return failure.record(StateError.io("fsync \(paths[index])", errno)) }
                }
            }
        }
        group.wait()
        if let error = failure.error { throw error }
    }

    /// True when folder `key` holds exactly `files`, byte for byte, and nothing else (every entry
    /// checked by the state rules on the way, no link followed).
    public func folderHolds(_ key: String, files: [(path: String, data: Data)]) throws -> Bool {
        guard try checkFolders(to: try StateKey.check(key), create: false) else { return false }
        let expected = Dictionary(files.map { ($0.path, $0.data) }, uniquingKeysWith: { first, _ in first })
        let found = try checkTree(key, limit: expected.count * 2 + 16)
        guard Set(found) == Set(expected.keys) else { return false }
        for (relative, data) in expected {
            guard try read(key + "/" + relative) == data else { return false }
        }
        return true
    }

    /// Checks every entry below folder `key` by the state rules (real folders and regular files
    /// of Stet's own user, not writable by others, no links) and returns the files' relative
    /// paths, sorted. More than `limit` entries is an error: nothing Stet writes has more.
    @discardableResult
    public func checkTree(_ key: String, limit: Int) throws -> [String] {
        let root = path(try StateKey.check(key))
        var files: [String] = []
        var count = 0
        var pending = [""]
        while let relative = pending.popLast() {
            let folder = relative.isEmpty ? root : root + "/" + relative
            for name in try Self.names(in: folder) {
                count += 1
                guard count <= limit else {
                    throw StateError.corrupt(root, "more than \(limit) entries, more than Stet writes there")
                }
                let child = relative.isEmpty ? name : relative + "/" + name
                var info = stat()
                guard lstat(root + "/" + child, &info) == 0 else { throw StateError.io("inspect \(root)/\(child)", errno) }
                let isFolder = info.st_mode & S_IFMT == S_IFDIR
                try StateFileRules.check(root + "/" + child, info, folder: isFolder)
                if isFolder { pending.append(child) } else { files.append(child) }
            }
        }
        return files.sorted()
    }

    /// The names in `folder` (not `.` and `..`), read with `readdir`: a copy of a release has as
    /// many as the release has files, and Foundation's listing costs more than the checks.
    static func names(in folder: String) throws -> [String] {
        guard let stream = opendir(folder) else { throw StateError.io("list \(folder)", errno) }
        defer { closedir(stream) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                guard errno == 0 else { throw StateError.io("list \(folder)", errno) }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
    }

    /// Removes folder `key` and everything in it; nothing when it does not exist.
    public func removeFolder(_ key: String) throws {
        let path = path(try StateKey.check(key))
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw StateError.io("inspect \(path)", errno)
        }
        try Self.removeTree(path)
        try AtomicFile.syncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// Names directly inside `folder` that `writeFolder` left behind (a crash before its rename
    /// or after it): hidden folders `.new-…` and `.old-…`, removed. Call under the state lock.
    public func removeLeftoverFolders(in folder: String) throws {
        guard try checkFolders(to: try StateKey.check(folder), create: false) else { return }
        let base = path(folder)
        for name in try Self.names(in: base) where name.hasPrefix(".new-") || name.hasPrefix(".old-") {
            try Self.removeTree(base + "/" + name)
        }
    }

    /// Removes `path` and, when it is a real folder, everything below it, never following a link
    /// (a link is removed itself).
    static func removeTree(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw StateError.io("inspect \(path)", errno)
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            for name in try names(in: path) { try removeTree(path + "/" + name) }
            guard rmdir(path) == 0 || errno == ENOENT else { throw StateError.io("remove \(path)", errno) }
        } else {
            guard unlink(path) == 0 || errno == ENOENT else { throw StateError.io("remove \(path)", errno) }
        }
    }
}
