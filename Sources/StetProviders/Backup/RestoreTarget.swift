import Foundation

/// The directory `stet restore` writes into, which others may be able to write to as well (a
/// service's data directory). restic follows every symbolic link it meets in its target, so a
/// link planted there (`etc -> /etc`) would make a restore write, or chmod, outside it.
///
/// So restic never writes into the target. It restores into a fresh directory that Stet makes
/// inside the target (mode 0700, so no one else can add a link to it) and reaches only through
/// Stet's open descriptor (`/proc/PID/fd/N`), so renaming that directory or putting a link in its
/// place changes nothing. Then Stet moves what restic wrote into place, entry by entry, through
/// descriptors opened without following links: a link in the target is replaced as an entry
/// (`renameat` never follows its last component), never followed.
public final class RestoreTarget: @unchecked Sendable {
    /// The target is not one Stet restores into (a link, not a directory, or not empty).
    public struct Refused: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// The short reason, for the audit log.
        public let reason: String
    }

    /// An entry could not be put in place, or the restore could not be staged.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public let path: String
    /// The target, opened without following a link; -1 until it exists.
    private var fd: Int32 = -1

    /// Checks the directory at `path`: refuses a symbolic link or anything but a directory, and
    /// a directory with entries unless `force`. A missing one is made by `restore`, so a refused
    /// restore leaves nothing behind.
    public init(_ path: String, force: Bool) throws {
        self.path = path
        var info = stat()
        if lstat(path, &info) != 0 {
            guard errno == ENOENT else { throw Failure(description: "cannot look at \(path): \(Self.error())") }
            return
        }
        if info.st_mode & S_IFMT == S_IFLNK {
            throw Refused(
                description: "\(path) is a symbolic link: name the directory itself (a restore never writes through a link)",
                reason: "the target is a symbolic link")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw Refused(description: "\(path) is not a directory", reason: "the target is not a directory")
        }
        try openTarget()
        if !force, !(Self.names(in: fd) ?? []).isEmpty {
            throw Refused(description: "\(path) is not empty: pass --force to restore into it anyway", reason: "the target is not empty")
        }
    }

    private func openTarget() throws {
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ELOOP || errno == ENOTDIR {
                throw Refused(description: "\(path) is not a directory (it was replaced meanwhile)", reason: "the target is not a directory")
            }
            throw Failure(description: "cannot open \(path): \(Self.error())")
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// What a restore put in place.
    public struct Summary: Sendable {
        /// Entries moved (a directory that was not there yet counts once, with all it holds).
        public var moved = 0
        /// Directories of the target that received restored entries.
        public var merged = 0
        /// Regular files restored, and their bytes, counted before they were put in place.
        public var files = 0
        public var bytes = 0
    }

    /// Has `write` restore into a fresh directory (the path it is given), then moves the result
    /// into the target. The fresh directory is removed in every case. Throws `Failure` naming
    /// the first entries that could not be put in place (a directory of the target where the
    /// snapshot has a file is left as it is).
    public func restore(_ write: (String) throws -> Void) throws -> Summary {
        if fd < 0 {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try openTarget()
        }
        let name = ".stet-restore-" + (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        guard mkdirat(fd, name, 0o700) == 0 else { throw Failure(description: "cannot make a directory in \(path): \(Self.error())") }
        let staging = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        defer {
            if staging >= 0 {
                Self.removeContents(of: staging)
                close(staging)
            }
            _ = unlinkat(fd, name, AT_REMOVEDIR)
        }
        // The directory opened must be the one made: Stet's, and closed to everyone else.
        var info = stat()
        guard staging >= 0, fstat(staging, &info) == 0, info.st_uid == geteuid(), info.st_mode & 0o077 == 0 else {
            throw Failure(description: "the directory Stet made in \(path) to restore into was replaced; nothing was restored")
        }
        try write("/proc/\(getpid())/fd/\(staging)")
        var summary = Summary()
        Self.count(in: staging, into: &summary)
        var problems: [String] = []
        merge(from: staging, into: fd, at: path, summary: &summary, problems: &problems)
        if !problems.isEmpty {
            throw Failure(description: "\(problems.count) restored entries could not be put in place: "
                + problems.prefix(3).joined(separator: "; ") + (problems.count > 3 ? "; …" : ""))
        }
        return summary
    }

    // MARK: - Moving into place

    /// Moves every entry of `source` into `target` (both open directories). A directory the
    /// target has already is entered (opened without following a link) and merged; any other
    /// entry, a link included, is replaced.
    private func merge(from source: Int32, into target: Int32, at where_: String, summary: inout Summary, problems: inout [String]) {
        guard let names = Self.names(in: source) else {
            problems.append("\(where_): cannot list the restored entries: \(Self.error())")
            return
        }
        for name in names {
            let shown = where_ + "/" + String(decoding: name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var info = stat()
            guard fstatat(source, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                problems.append("\(shown): \(Self.error())")
                continue
            }
            if info.st_mode & S_IFMT == S_IFDIR {
                let existing = openat(target, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if existing >= 0 {
                    defer { close(existing) }
                    let inner = openat(source, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    guard inner >= 0 else {
                        problems.append("\(shown): \(Self.error())")
                        continue
                    }
                    defer { close(inner) }
                    merge(from: inner, into: existing, at: shown, summary: &summary, problems: &problems)
                    // The directory as the snapshot has it: its mode and times, set through the
                    // descriptor (never through a path that could be a link).
                    _ = fchmod(existing, info.st_mode & 0o7777)
                    var times = [info.st_atim, info.st_mtim]
                    _ = futimens(existing, &times)
                    summary.merged += 1
                    continue
                }
                let reason = errno
                // A link, or a file, where the snapshot has a directory: the entry is replaced
                // (unlinkat removes the link itself, never what it points to).
                if reason == ELOOP || reason == ENOTDIR {
                    guard unlinkat(target, name, 0) == 0 else {
                        problems.append("\(shown): cannot remove what is in the way: \(Self.error())")
                        continue
                    }
                } else if reason != ENOENT {
                    problems.append("\(shown): \(String(cString: strerror(reason)))")
                    continue
                }
            }
            move(name, from: source, into: target, shown: shown, info: info, summary: &summary, problems: &problems)
        }
    }

    /// Renames one entry into place; across file systems (a mount point inside the target) it
    /// is copied instead.
    private func move(_ name: [CChar], from source: Int32, into target: Int32, shown: String, info: stat,
                      summary: inout Summary, problems: inout [String])
    {
        if renameat(source, name, target, name) == 0 {
            summary.moved += 1
            return
        }
        let reason = errno
        switch reason {
        case EXDEV:
            if let problem = copy(name, from: source, into: target, shown: shown, info: info, summary: &summary, problems: &problems) {
                problems.append(problem)
            }
        case EISDIR, ENOTEMPTY, EEXIST:
            problems.append("\(shown): a directory is in the way of what the snapshot has there; it was left as it is")
        default:
            problems.append("\(shown): \(String(cString: strerror(reason)))")
        }
    }

    /// Copies one entry across file systems into a fresh name, then renames it into place.
    private func copy(_ name: [CChar], from source: Int32, into target: Int32, shown: String, info: stat,
                      summary: inout Summary, problems: inout [String]) -> String?
    {
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            guard mkdirat(target, name, 0o700) == 0 || errno == EEXIST else { return "\(shown): \(Self.error())" }
            let made = openat(target, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let inner = openat(source, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            defer {
                if made >= 0 { close(made) }
                if inner >= 0 { close(inner) }
            }
            guard made >= 0, inner >= 0 else { return "\(shown): \(Self.error())" }
            merge(from: inner, into: made, at: shown, summary: &summary, problems: &problems)
            _ = fchmod(made, info.st_mode & 0o7777)
            var times = [info.st_atim, info.st_mtim]
            _ = futimens(made, &times)
            return nil
        case S_IFREG, S_IFLNK:
            let temporary = Array(".stet-restore-part-\(UInt64.random(in: 0...UInt64.max))".utf8CString)
            if info.st_mode & S_IFMT == S_IFLNK {
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let length = readlinkat(source, name, &buffer, buffer.count - 1)
                guard length >= 0, symlinkat(buffer, target, temporary) == 0 else { return "\(shown): \(Self.error())" }
            } else {
                let input = openat(source, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                let output = openat(target, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                defer {
                    if input >= 0 { close(input) }
                    if output >= 0 { close(output) }
                }
                guard input >= 0, output >= 0, Self.copyBytes(from: input, to: output) else {
                    let problem = "\(shown): \(Self.error())"
                    _ = unlinkat(target, temporary, 0)
                    return problem
                }
                if geteuid() == 0 { _ = fchown(output, info.st_uid, info.st_gid) }
                _ = fchmod(output, info.st_mode & 0o7777)
                var times = [info.st_atim, info.st_mtim]
                _ = futimens(output, &times)
            }
            guard renameat(target, temporary, target, name) == 0 else {
                let problem = errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST
                    ? "\(shown): a directory is in the way of what the snapshot has there; it was left as it is" : "\(shown): \(Self.error())"
                _ = unlinkat(target, temporary, 0)
                return problem
            }
            summary.moved += 1
            return nil
        default:
            return "\(shown): a special file cannot be moved across file systems; it was not restored"
        }
    }

    private static func copyBytes(from input: Int32, to output: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return false }
            if count == 0 { return true }
            var written = 0
            while written < count {
                let n = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, count - written) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                written += n
            }
        }
    }

    // MARK: - Directories by descriptor

    /// The names in the open directory `fd` (NUL-terminated, without `.` and `..`); nil when it
    /// cannot be listed.
    static func names(in fd: Int32) -> [[CChar]]? {
        let copy = dup(fd)
        guard copy >= 0 else { return nil }
        guard let directory = fdopendir(copy) else {
            close(copy)
            return nil
        }
        defer { closedir(directory) }
        // A duplicate shares its position with `fd`: start from the first entry.
        rewinddir(directory)
        var names: [[CChar]] = []
        while let entry = readdir(directory) {
            var name = entry.pointee.d_name
            let bytes = withUnsafeBytes(of: &name) { Array($0.prefix { $0 != 0 }) }
            if bytes == [0x2E] || bytes == [0x2E, 0x2E] { continue }
            names.append(bytes.map { CChar(bitPattern: $0) } + [0])
        }
        return names
    }

    /// Counts the regular files inside the open directory `fd` and their bytes, through
    /// descriptors only (no link is followed). Sums saturate rather than trap.
    static func count(in fd: Int32, into summary: inout Summary) {
        for name in names(in: fd) ?? [] {
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                let inner = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard inner >= 0 else { continue }
                count(in: inner, into: &summary)
                close(inner)
            case S_IFREG:
                summary.files = summary.files.addingReportingOverflow(1).overflow ? Int.max : summary.files + 1
                let (sum, overflow) = summary.bytes.addingReportingOverflow(Int(max(info.st_size, 0)))
                summary.bytes = overflow ? Int.max : sum
            default:
                continue
            }
        }
    }

    /// Removes everything inside the open directory `fd`, through descriptors only.
    static func removeContents(of fd: Int32) {
        for name in names(in: fd) ?? [] {
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFDIR {
                let inner = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if inner >= 0 {
                    // restic restores modes: a directory without write permission is opened up first.
                    _ = fchmod(inner, 0o700)
                    removeContents(of: inner)
                    close(inner)
                }
                _ = unlinkat(fd, name, AT_REMOVEDIR)
            } else {
                _ = unlinkat(fd, name, 0)
            }
        }
    }

    private static func error() -> String { String(cString: strerror(errno)) }
}
