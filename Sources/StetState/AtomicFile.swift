public import Foundation

/// Writes files so that a crash leaves either the old content or the new, never a mix: write a
/// temporary file beside the target, fsync it, rename it over the target, fsync the directory.
/// The temporary file is always new (`O_EXCL | O_NOFOLLOW`): a file or link planted under its
/// name fails the write instead of receiving it.
public enum AtomicFile {
    /// Without `syncDirectory` the rename is not waited for: a crash leaves the old content or
    /// the new one (each complete), and the next fsync of the folder makes the rename last.
    /// Without `syncContent` nothing is waited for: a crash of the writing process still leaves
    /// the old content or the new (the kernel holds both), but a power loss may leave the file
    /// empty on a file system that does not order a rename after its data, until it is fsynced.
    ///
    /// With `displace`, the old file is not freed here: the new one takes its name in an
    /// exchange (`renameat2` with `RENAME_EXCHANGE`), and the old one is left under the temporary
    /// name, which is returned for the caller to remove later (nil when there was no old file,
    /// or the file system cannot exchange). Freeing a file's blocks and inode costs ext4 a
    /// quarter of a millisecond and more, which a replacement's spawn should not wait for.
    /// Temporary names contain `.tmp.` and the writer's pid (`writer(ofTemporary:)`), which
    /// listings skip (`FileStateStore.list`) and `FileStateStore.removeLeftovers` removes once
    /// their writer has ended.
    @discardableResult
    public static func write(
        _ data: Data, to path: String, mode: mode_t = 0o644, syncDirectory sync: Bool = true, syncContent: Bool = true,
        displace: Bool = false
    ) throws -> String? {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(path).tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw StateError.io("create \(temporary)", errno) }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        do {
            defer { close(fd) }
            try writeAll(data, to: fd, path: temporary)
            guard fchmod(fd, mode) == 0 else { throw StateError.io("chmod \(temporary)", errno) }
            if syncContent { guard fsync(fd) == 0 else { throw StateError.io("fsync \(temporary)", errno) } }
        }
        // An exchange that cannot be made (nothing to exchange with, a file system, kernel or
        // seccomp filter without it) is a plain rename, which reports any real error.
        let displaced = displace && exchangePaths(temporary, path) ? temporary : nil
        if displaced == nil {
            guard rename(temporary, path) == 0 else { throw StateError.io("rename \(temporary) to \(path)", errno) }
        }
        ok = true
        if sync, syncContent { try syncDirectory(directory.isEmpty ? "." : directory) }
        return displaced
    }

    /// The pid of the process that made temporary file `name` (`….tmp.PID.RANDOM`), or nil when
    /// `name` is not one: a positive number of at most ten digits.
    public static func writer(ofTemporary name: String) -> pid_t? {
        let bytes = Array(name.utf8)
        let marker = Array(".tmp.".utf8)
        guard bytes.count > marker.count,
            let start = (0...(bytes.count - marker.count)).last(where: { bytes[$0..<($0 + marker.count)].elementsEqual(marker) })
        else { return nil }
        let digits = bytes[(start + marker.count)...].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard (1...10).contains(digits.count), digits.endIndex < bytes.endIndex, bytes[digits.endIndex] == UInt8(ascii: "."),
            let pid = pid_t(String(decoding: digits, as: UTF8.self)), pid > 0
        else { return nil }
        return pid
    }

    /// Creates `path` with `data` unless it exists, atomically: written and fsynced under a
    /// temporary name, then linked into place, which fails rather than replace a file made
    /// meanwhile. Returns false when `path` existed (its content untouched).
    @discardableResult
    public static func create(_ data: Data, at path: String, mode: mode_t = 0o600) throws -> Bool {
        let temporary = "\(path).tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        _ = try write(data, to: temporary, mode: mode)
        defer { unlink(temporary) }
        guard link(temporary, path) == 0 else {
            if errno == EEXIST { return false }
            throw StateError.io("create \(path)", errno)
        }
        let directory = (path as NSString).deletingLastPathComponent
        try syncDirectory(directory.isEmpty ? "." : directory)
        return true
    }

    /// Writes all of `data` to `fd`, resuming after short writes and interrupts. `path` names
    /// the file in errors.
    public static func writeAll(_ data: Data, to fd: Int32, path: String) throws {
        try data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw StateError.io("write \(path)", errno)
                }
                offset += n
            }
        }
    }

    /// fsyncs a directory so that a rename or a new entry in it survives a crash.
    public static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StateError.io("open directory \(path)", errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StateError.io("fsync directory \(path)", errno) }
    }

    /// Creates `path` and its missing parents with `mode`, fsyncing each new directory's parent.
    public static func makeDirectory(_ path: String, mode: mode_t = 0o700) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw StateError.io("\(path) exists and is not a directory", ENOTDIR) }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path { try makeDirectory(parent, mode: mode) }
        if mkdir(path, mode) != 0, errno != EEXIST { throw StateError.io("create directory \(path)", errno) }
        try syncDirectory(parent.isEmpty ? "." : parent)
    }
}
