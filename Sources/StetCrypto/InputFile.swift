public import Foundation

/// Reading a file that comes from outside (a repository, a CI artifact, an operator's path):
/// only a regular file, only up to a size fixed before a byte is read. A 1.5 GB "envelope" or a
/// FIFO named like a manifest is refused instead of filling memory or blocking for ever.
public enum InputFile {
    /// The size limits, one per kind of input, each well above any real file.
    public enum Limit {
        /// `release.dsse.json`: an index of 100,000 files is about 12 MB of base64.
        public static let releaseEnvelope = 16 << 20
        /// One manifest file (10,000 services fit in one).
        public static let manifest = 1 << 20
        /// `trust.yaml` and `trust.dsse.json`.
        public static let trustPolicy = 1 << 20
        /// A PEM key file.
        public static let key = 64 << 10
        /// A saved plan or an exported snapshot.
        public static let plan = 64 << 20
        /// A checkpoint, cosignature or proof file.
        public static let note = 1 << 20
    }

    public struct Failure: Error, CustomStringConvertible, Sendable, Equatable {
        public let path: String
        public let message: String
        /// The system's error number when the host could not open or read the file (no
        /// descriptor or memory left, no permission, a device error): the file itself may be
        /// fine, so such a failure says nothing about its content and decides nothing. Nil when
        /// the failure is the file's: not there as a regular file, too large, a link.
        public let hostError: Int32?

        public init(path: String, message: String, hostError: Int32? = nil) {
            self.path = path
            self.message = message
            self.hostError = hostError
        }

        /// A failure of the system call that returned `code`: the host's when `code` is one of
        /// `hostErrors`, the file's otherwise.
        public init(path: String, _ operation: String, errorNumber code: Int32) {
            self.init(path: path, message: "\(operation): \(String(cString: strerror(code)))",
                      hostError: InputFile.hostErrors.contains(code) ? code : nil)
        }

        public var description: String { "\(path): \(message)" }
    }

    /// Error numbers that say the host could not read a file now, whatever the file holds.
    /// Anything else (ENOTDIR, ENXIO, ELOOP, ENAMETOOLONG …) is a property of the path.
    public static let hostErrors: Set<Int32> = [EMFILE, ENFILE, ENOMEM, ENOBUFS, EIO, EACCES, EPERM, EINTR, ESTALE, ETIMEDOUT, ENOLCK]

    /// The bytes of the regular file at `path`, nil when nothing is there. Throws when it is not
    /// a regular file (a directory, a FIFO, a device), is larger than `limit`, or cannot be
    /// read. With `followSymlinks: false` a symbolic link is refused too.
    public static func read(_ path: String, limit: Int, followSymlinks: Bool = true) throws(Failure) -> Data? {
        try read(path, in: AT_FDCWD, named: path, limit: limit, followSymlinks: followSymlinks)
    }

    /// `read(_:limit:followSymlinks:)` of `relative`, looked up from the directory open as
    /// `directory` (the kernel walks the directory's own path once, not once per file of a
    /// release); failures call the file `path`.
    public static func read(
        _ relative: String, in directory: CInt, named path: String, limit: Int, followSymlinks: Bool = true
    ) throws(Failure) -> Data? {
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        let fd = openat(directory, relative, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followSymlinks ? 0 : O_NOFOLLOW))
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { return nil }
            if code == ELOOP { throw Failure(path: path, message: "is a symbolic link, which is not accepted here") }
            throw Failure(path: path, "cannot open", errorNumber: code)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(path: path, "cannot read", errorNumber: errno) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw Failure(path: path, message: "is not a regular file") }
        guard info.st_size <= limit else {
            throw Failure(path: path, message: "is \(info.st_size) bytes; at most \(limit) are accepted")
        }
        // Read up to one byte past the limit, in case the file grows while it is read.
        var data = Data(count: Int(info.st_size) + 1)
        var total = 0
        while total < data.count {
            let n = data.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                // Only a special file that calls itself regular (/proc/kmsg, a tracing pipe) has
                // nothing to read yet: asking again would spin for ever.
                if errno == EAGAIN { throw Failure(path: path, message: "is not an ordinary file: it has nothing to read yet") }
                throw Failure(path: path, "cannot read", errorNumber: errno)
            }
            if n == 0 { break }
            total += n
            if total == data.count, total <= limit { data.count += 64 << 10 }
        }
        guard total <= limit else { throw Failure(path: path, message: "grew past \(limit) bytes while it was read") }
        data.count = total
        return data
    }
}
