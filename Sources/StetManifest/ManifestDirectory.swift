import Foundation
import StetCore
import StetCrypto

/// The files of a manifest directory that a release covers: every `.yaml`/`.yml` file below it,
/// by `/`-separated path relative to it. Hidden entries (names starting with `.`) are skipped by
/// listing, signing, verifying and parsing alike.
public struct ManifestDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public struct Listing: Sendable {
        /// Manifest files, sorted.
        public var manifests: [String] = []
        /// Every symbolic link met on the way (files and directories), relative paths.
        public var symlinks: [String] = []
        /// The manifest files that are regular files reached through real folders only (the
        /// walk never enters a link): no symbolic link on their path when listed.
        public var direct: Set<String> = []
    }

    public static func isManifest(_ name: String) -> Bool { name.hasSuffix(".yaml") || name.hasSuffix(".yml") }

    /// Walks the directory without following symbolic links to directories.
    public func list() throws -> Listing {
        var listing = Listing()
        try walk(relative: "", into: &listing)
        listing.manifests.sort()
        listing.symlinks.sort()
        return listing
    }

    private func walk(relative: String, into listing: inout Listing) throws {
        let directory = relative.isEmpty ? path : path + "/" + relative
        for (name, type) in try Self.names(in: directory) where !name.hasPrefix(".") {
            let child = relative.isEmpty ? name : relative + "/" + name
            // The type readdir gave, where the file system gives one (as ext4, xfs and btrfs
            // do): an lstat per file was most of listing a large release.
            let mode: mode_t
            switch type {
            case UInt8(DT_REG): mode = S_IFREG
            case UInt8(DT_DIR): mode = S_IFDIR
            case UInt8(DT_LNK): mode = S_IFLNK
            default:
                var info = stat()
                guard lstat(path + "/" + child, &info) == 0 else { continue }
                mode = info.st_mode & S_IFMT
            }
            switch mode {
            case S_IFLNK:
                listing.symlinks.append(child)
                var target = stat()
                if Self.isManifest(name), stat(path + "/" + child, &target) == 0, target.st_mode & S_IFMT == S_IFREG {
                    listing.manifests.append(child)
                }
            case S_IFDIR:
                try walk(relative: child, into: &listing)
            case S_IFREG where Self.isManifest(name):
                listing.manifests.append(child)
                listing.direct.insert(child)
            default:
                break
            }
        }
    }

    /// The names in `directory`. Throws `InputFile.Failure` when the host cannot list it now
    /// (`hostError`: no descriptor left, an I/O error), `ManifestDirectoryError` otherwise.
    private static func names(in directory: String) throws -> [(name: String, type: UInt8)] {
        guard let stream = opendir(directory) else {
            let code = errno
            let failure = InputFile.Failure(path: directory, "cannot list", errorNumber: code)
            if failure.hostError != nil { throw failure }
            throw ManifestDirectoryError(message: "cannot read manifest directory \(directory): \(String(cString: strerror(code)))")
        }
        defer { closedir(stream) }
        var names: [(name: String, type: UInt8)] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                let code = errno
                // Only the host fails here (an I/O error): the directory opened.
                guard code == 0 else { throw InputFile.Failure(path: directory, message: "cannot list: \(String(cString: strerror(code)))", hostError: code) }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append((name, entry.pointee.d_type)) }
        }
    }

    /// The canonical absolute path of the directory.
    public func realPath() -> String? { Self.realPath(path) }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// True when `relative`, with every symbolic link resolved, stays inside the directory.
    public func staysInside(_ relative: String) -> Bool {
        guard let root = realPath() else { return false }
        guard let target = Self.realPath(path + "/" + relative) else {
            // A dangling link: judge by where it points textually.
            guard let destination = try? FileManager.default.destinationOfSymbolicLink(atPath: path + "/" + relative) else {
                return false
            }
            if destination.hasPrefix("/") { return false }
            return Self.isSafeRelativePath(((relative as NSString).deletingLastPathComponent as NSString)
                .appendingPathComponent(destination))
        }
        return target == root || target.hasPrefix(root + "/")
    }

    /// Why `relative` may not name a file of a release, nil when it may. Names are compared byte
    /// for byte, so each must be in Unicode NFC (an NFD `café.yaml` beside the NFC one would
    /// otherwise look the same to a reader and be another file to the file system), and none
    /// may hold a control character or an invisible formatting character (which could fake
    /// output on a terminal).
    public static func nameProblem(_ relative: String) -> String? {
        // Printable ASCII is its own normal form and holds nothing to escape: nearly every name.
        if relative.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return nil }
        if relative.unicodeScalars.contains(where: { TextEscaping.needsEscape($0, keepNewlines: false) }) {
            return "has a control or invisible formatting character in its name"
        }
        if !isASCII(relative), !Array(relative.utf8).elementsEqual(relative.precomposedStringWithCanonicalMapping.utf8) {
            return "has a name that is not in Unicode normal form C (NFC); rename it"
        }
        return nil
    }

    /// The first two names of `names` that are equal once normalised (NFC), if any.
    public static func normalisationClash(_ names: [String]) -> (String, String)? {
        // Two ASCII names are the same once normalised only when they are the same bytes.
        if names.allSatisfy(isASCII) { return nil }
        var seen: [[UInt8]: String] = [:]
        for name in names {
            // ASCII is its own normal form.
            let normal = isASCII(name) ? Array(name.utf8) : Array(name.precomposedStringWithCanonicalMapping.utf8)
            if let first = seen[normal], !Array(first.utf8).elementsEqual(name.utf8) { return (first, name) }
            seen[normal] = name
        }
        return nil
    }

    private static func isASCII(_ name: String) -> Bool { name.utf8.allSatisfy { $0 < 0x80 } }

    /// True for a relative, `/`-separated path with no empty, `.` or `..` component.
    public static func isSafeRelativePath(_ path: String) -> Bool {
        // Byte by byte: every file of a release passes here. A component is what lies between
        // two `/` (or an end); the empty one, `.` and `..` are refused, as are `\\` and NUL.
        var length = 0
        var dots = 0
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "/"):
                guard length > 0, dots < length || length > 2 else { return false }
                length = 0
                dots = 0
                continue
            case UInt8(ascii: "\\"), 0: return false
            case UInt8(ascii: "."): dots += 1
            default: break
            }
            length += 1
        }
        return length > 0 && (dots < length || length > 2)
    }
}

public struct ManifestDirectoryError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}
